"""Batch runs (``--batch``): the same engine and run directory, requests sent as batch files.

Every client of the run gets a :class:`~sftlabel.llm.BatchTransport` (the label model in
``<run>/batches/``, an arbitration model of its own in ``<run>/batches-arbiter/``); the engine
runs unchanged beside the transports' poll loops. A Ctrl-C leaves the batches running at the
provider: ``--resume`` collects them, ``--cancel`` cancels them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

from sftlabel.errors import UsageError
from sftlabel.llm import BatchOptions, BatchTransport, Budget, ExportAPI, LLMClient
from sftlabel.runs import Outcome, RunControl, RunState

BATCH_WINDOW = 50_000
"""Items in flight in a batch run (a round holds at most this many items' requests)."""
DIRECTORIES = ("batches", "batches-arbiter")


class BatchSettings:
    """What ``--batch`` and its options ask for."""

    def __init__(self, opts: dict[str, Any]) -> None:
        self.enabled = bool(opts.get("batch"))
        self.poll_interval = float(opts.get("poll_interval") or 30.0)
        # a round is formed once no request came for this long (at most 2 s; shorter with
        # quick polls, as in tests)
        self.settle = float(opts.get("batch_settle") or min(2.0, max(self.poll_interval, 0.2)))
        self.max_requests = opts.get("batch_max_requests")
        self.on_event: Callable[[str], None] | None = opts.get("on_batch_event")
        self.export: str | None = opts.get("batch_export")
        imports = opts.get("batch_import") or []
        if isinstance(imports, str | Path):
            imports = [imports]
        self.imports = [Path(p) for p in imports]
        if self.export:
            self.enabled = True
        self.on_waiting: Callable[[str], None] | None = None


def attach(
    clients: Sequence[LLMClient | None],
    root: Path,
    settings: BatchSettings,
    budget: Budget | None,
) -> list[BatchTransport]:
    """A batch transport under each client (None entries are skipped)."""
    transports = []
    for client, name in zip(clients, DIRECTORIES, strict=False):
        if client is None:
            continue
        if client.cache is None:
            raise UsageError(
                "--batch needs the response cache",
                hint="drop --no-cache (the answers are collected into it)",
            )
        transport = BatchTransport(
            client,
            BatchOptions(
                directory=root / name,
                poll_interval=settings.poll_interval,
                settle=settings.settle,
                max_requests=int(settings.max_requests) if settings.max_requests else None,
                prefix="a" if name.endswith("arbiter") else "b",
                on_event=settings.on_event,
                on_waiting=settings.on_waiting if settings.export else None,
            ),
            budget=budget,
            api=ExportAPI(Path(settings.export), imports=settings.imports)
            if settings.export
            else None,
        )
        client.batch = transport
        transports.append(transport)
    return transports


async def run_with(
    transports: list[BatchTransport], work: Callable[[], Awaitable[Outcome]]
) -> Outcome:
    """Run the engine (``work``) beside the transports' loops; they stop when it ends."""
    if not transports:
        return await work()
    result: list[Outcome] = []
    async with anyio.create_task_group() as group:
        for transport in transports:
            group.start_soon(transport.run)
        result.append(await work())
        group.cancel_scope.cancel()
    return result[0]


async def close(transports: list[BatchTransport]) -> None:
    for transport in transports:
        await transport.aclose()


def still_running(transports: list[BatchTransport], resume: str) -> str | None:
    """The message for batches left running at the provider (Ctrl-C, a spent budget);
    ``resume``: the command that resumes the run."""
    count = sum(t.waiting for t in transports)
    if not count:
        return None
    return (
        f"{count} batch(es) still running at the provider: collect them with `{resume}`, "
        f"or cancel them with `{resume} --cancel`"
    )


def snapshot(transports: list[BatchTransport]) -> list[dict[str, Any]]:
    return [row for t in transports for row in t.snapshot()]


def with_batches(
    on_progress: Callable[[RunState], None] | None, transports: list[BatchTransport]
) -> Callable[[RunState], None] | None:
    """``on_progress`` with the state of every running batch put into the snapshot."""
    if on_progress is None or not transports:
        return on_progress
    callback = on_progress

    def update(state: RunState) -> None:
        state.batches = snapshot(transports)
        callback(state)

    return update


def settings_for(
    opts: dict[str, Any], rate: Any, control: RunControl, model: str, resume: str
) -> BatchSettings:
    """The batch settings of a session: what the run recorded (``rate``) and what was given;
    in export mode, a round waiting for its output stops the session with what to run."""
    settings = BatchSettings(
        {
            **opts,
            "batch": rate.batch or opts.get("batch"),
            "batch_export": rate.batch_export or opts.get("batch_export"),
        }
    )
    if rate.poll_interval:
        settings.poll_interval = rate.poll_interval

    def waiting(message: str) -> None:
        files = message.removeprefix("waiting for the output of ").split(", ")
        outputs = [f"{f.removesuffix('.jsonl')}.output.jsonl" for f in files]
        commands = "; ".join(
            f"`vllm run-batch -i {f} -o {o} --model {model}`"
            for f, o in zip(files, outputs, strict=True)
        )
        imports = " ".join(f"--batch-import {o}" for o in outputs)
        control.interrupt(f"{message}: run {commands}, then `{resume} {imports}`")

    settings.on_waiting = waiting
    return settings


async def cancel(transports: list[BatchTransport]) -> int:
    """Cancel every batch of the run still running; how many were."""
    total = 0
    for transport in transports:
        total += await transport.cancel_all()
    return total
