"""``sftlabel slice``: normalized samples as JSON Lines."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import msgspec
import typer
from rich.text import Text

from sftlabel.cli._common import InputPaths, output_stream, plural, progress, stderr
from sftlabel.cli._examples import epilog
from sftlabel.cli._safe import closed_pipe_is_fine, printable
from sftlabel.formats import Reader
from sftlabel.model import Problem, Sample
from sftlabel.slicing import SliceStats, SparsePolicy, iter_samples

SHOWN_PROBLEMS = 10
BATCH = 512


def slice_(
    paths: InputPaths,
    output: Annotated[
        str,
        typer.Option(
            "--output", "-o", help="Output JSONL file, or - for stdout.", show_default=False
        ),
    ],
    sparse: Annotated[
        bool,
        typer.Option(
            "--sparse",
            help="Label a subset of long pyramids; skipped slices are listed in the "
            "'inherited_by' field of the sample they take their labels from.",
        ),
    ] = False,
    sparse_threshold: Annotated[
        int, typer.Option(help="With --sparse: every slice up to this one is kept.", min=1)
    ] = SparsePolicy().threshold,
    sparse_ratio: Annotated[
        float,
        typer.Option(
            help="With --sparse: after the threshold keep slices at threshold × ratio^k.", min=1.01
        ),
    ] = SparsePolicy().ratio,
    max_chars: Annotated[
        int | None,
        typer.Option(
            help="Shorten what the labeler sees to about N characters (keeps the first user "
            "turn, the last reply and the most recent middle turns; marks the sample truncated).",
            min=1,
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Write at most N samples.", min=0)] = None,
    shuffle: Annotated[
        bool,
        typer.Option(
            help="Random order (with --limit: a uniform random subset). Without --limit every "
            "sample is held in memory."
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Random seed for --shuffle.")] = 0,
) -> None:
    """Slice conversations into samples, one JSON object per line.

    One sample per assistant reply with the full context before it (ids `<id>_t<k>`); a record with
    a single reply, or a Pangu pseudo multi-turn record, stays one sample; a reply with `weight: 0`
    is context only. Samples read back (a slice output) are written unchanged. Unreadable records
    are reported with file:line and skipped; the exit code is 1 when there were any.
    """
    policy = SparsePolicy(threshold=sparse_threshold, ratio=sparse_ratio) if sparse else None
    stats = SliceStats()
    problems: Counter[str] = Counter()
    shown = 0
    written = 0
    encoder = msgspec.json.Encoder()
    items = iter_samples(
        Reader().read(paths),
        sparse=policy,
        max_chars=max_chars,
        limit=limit,
        shuffle=shuffle,
        seed=seed,
        stats=stats,
    )
    with closed_pipe_is_fine(), output_stream(output) as out, progress("slicing…") as update:
        batch: list[Sample] = []
        for item in items:
            if isinstance(item, Problem):
                if item.code == "skipped-files":  # a note about the walk, not about the data
                    stderr.print(Text(printable(str(item)), style="dim"))
                    continue
                problems[item.severity] += 1
                if item.severity == "error" and not item.record_level:
                    problems["file"] += 1
                if shown < SHOWN_PROBLEMS:
                    shown += 1
                    style = "red" if item.severity == "error" else "yellow"
                    stderr.print(Text(printable(str(item)), style=style))
                continue
            batch.append(item)
            if len(batch) >= BATCH:
                out.write(encoder.encode_lines(batch))
                written += len(batch)
                batch.clear()
                update(f"{stats.conversations:,} conversations → {written:,} samples")
        if batch:
            out.write(encoder.encode_lines(batch))
            written += len(batch)
    hidden = problems["error"] + problems["warning"] - shown
    if hidden > 0:
        stderr.print(
            f"… {hidden:,} more problems (`sftlabel detect --json` lists them all)", style="dim"
        )
    summary = (
        f"{plural(stats.conversations, 'conversation')} → {plural(written, 'sample')} written"
        f" to {'stdout' if output == '-' else printable(output)}"
    )
    if policy is not None:
        summary += f"; {stats.skipped_sparse:,} slices skipped by --sparse (mapped to labeled ones)"
    if max_chars is not None:
        summary += f"; {stats.truncated:,} truncated"
    if stats.without_reply:
        summary += f"; {stats.without_reply:,} without an assistant reply"
    if stats.context_only:
        summary += f"; {stats.context_only:,} replies with weight 0 kept as context only"
    if stats.passed_through:
        summary += f"; {stats.passed_through:,} read as samples (not sliced again)"
    summary += f"; {plural(problems['error'] - problems['file'], 'unreadable record')}"
    if problems["file"]:
        summary += f", {plural(problems['file'], 'unreadable file')}"
    summary += f", {plural(problems['warning'], 'warning')}"
    stderr.print(summary, markup=False)
    raise typer.Exit(1 if problems["error"] else 0)


slice_.command_settings = {"epilog": epilog("slice")}  # type: ignore[attr-defined]
