"""``sftlabel status RUN``: what a run holds and where it stands, from its files alone (for
running and finished runs of every kind)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import msgspec

from sftlabel.errors import UsageError
from sftlabel.runs import (
    FAILURES,
    MANIFEST,
    METADATA,
    PROBLEMS,
    GenerateFiles,
    RunFiles,
    Session,
    SoftOutput,
    read_manifest,
)

PathLike = str | os.PathLike[str]


class _Reason(msgspec.Struct):
    reason: str | None = None
    error: str | None = None


class _Severity(msgspec.Struct):
    severity: str = "error"


class RunStatus(msgspec.Struct, kw_only=True):
    """A run's state: ``running`` (a session has not finished: running now, or killed),
    ``completed``, ``budget``, ``aborted``, ``interrupted`` or ``finalizing``."""

    path: str
    kind: str
    state: str
    model: str
    labeled: int
    failed: int
    failures_by_reason: dict[str, int]
    unreadable: int
    spent: float
    max_cost: float | None
    sessions: list[Session]
    inputs: list[str]


def status(run: PathLike) -> RunStatus:
    """The state of the run directory or soft-label output ``run``."""
    root = Path(run)
    if not (root / MANIFEST).is_file():
        hint = "a softlabel output from before run.json is read by `sftlabel report`"
        if (root / METADATA).is_file():
            raise UsageError(f"{root} has no {MANIFEST} (an older softlabel output)", hint=hint)
        raise UsageError(f"{root} is not a run (no {MANIFEST})")
    manifest = read_manifest(root)
    reasons: Counter[str] = Counter()
    labeled = 0
    if manifest.kind == "softlabel":
        output = SoftOutput(root, [])
        decoder = msgspec.json.Decoder(_Reason)
        for line in output.lines():
            record = decoder.decode(line)
            if record.error is None:
                labeled += 1
            else:
                reasons[record.reason or "error"] += 1
    else:
        files = GenerateFiles(root) if manifest.kind == "generate" else RunFiles(root)
        labeled_ids, _ = files.done()
        labeled = len(labeled_ids)
        decoder = msgspec.json.Decoder(_Reason)
        seen: set[str] = set()
        for line in files.lines(FAILURES):
            key = msgspec.json.decode(line).get("id")
            if key in labeled_ids or key in seen:
                continue
            seen.add(str(key))
            reasons[decoder.decode(line).reason or "unknown"] += 1
    unreadable = 0
    problems = root / PROBLEMS
    if problems.is_file():
        severity = msgspec.json.Decoder(_Severity)
        with problems.open("rb") as handle:
            unreadable = sum(
                1 for line in handle if line.strip() and severity.decode(line).severity == "error"
            )
    last = manifest.sessions[-1] if manifest.sessions else None
    return RunStatus(
        path=str(root),
        kind=manifest.kind,
        state=last.status if last is not None else "new",
        model=manifest.model,
        labeled=labeled,
        failed=sum(reasons.values()),
        failures_by_reason=dict(reasons.most_common()),
        unreadable=unreadable,
        spent=round(manifest.spent, 6),
        max_cost=manifest.rate.max_cost,
        sessions=manifest.sessions,
        inputs=manifest.given_inputs or manifest.inputs,
    )


__all__ = ["RunStatus", "status"]
