"""Options of batch runs (``--batch``), shared by label and softlabel."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

BATCH = "Batch API"

BatchOption = Annotated[
    bool | None,
    typer.Option(
        "--batch",
        help="Send the requests as batch files through the provider's Batch API (OpenAI, Azure "
        "OpenAI, LiteLLM /batches): half the price, no online rate limits, answers within 24 h. "
        "A resume keeps it; Ctrl-C leaves the batches running (see docs/batch.md).",
        rich_help_panel=BATCH,
        show_default=False,
    ),
]
PollIntervalOption = Annotated[
    float | None,
    typer.Option(
        min=0.01,
        help="Seconds between polls of a running batch [default: 30].",
        rich_help_panel=BATCH,
        show_default=False,
    ),
]
CancelOption = Annotated[
    bool,
    typer.Option(
        "--cancel",
        help="With --resume: cancel the run's batches still running at the provider.",
        rich_help_panel=BATCH,
    ),
]
BatchMaxRequestsOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Requests per batch file [default: the provider's limit: 50,000 OpenAI, 100,000 "
        "Azure; files stay under 200 MB].",
        rich_help_panel=BATCH,
        show_default=False,
    ),
]


def print_event(text: str) -> None:
    """A batch submitted, changing state or collected: one line on stderr."""
    from sftlabel.cli._common import stderr

    stderr.print(text, markup=False, soft_wrap=True)


BatchExportOption = Annotated[
    Path | None,
    typer.Option(
        help="Self-hosted batches: write each round's request JSONL into DIR (for `vllm "
        "run-batch` or any tool of the OpenAI batch format) and stop; a resume with "
        "--batch-import reads the outputs back.",
        rich_help_panel=BATCH,
        show_default=False,
    ),
]
BatchImportOption = Annotated[
    list[Path] | None,
    typer.Option(
        help="With --resume of a --batch-export run: an output JSONL of `vllm run-batch` to "
        "read back (repeatable); answered only where status_code is 2xx and the body parses.",
        rich_help_panel=BATCH,
        show_default=False,
    ),
]
