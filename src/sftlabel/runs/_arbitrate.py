"""The arbitrate task on the engine: re-ask the low-confidence dimensions of a finished run.

One item is one labeled sample of the source run. Samples with no dimension below the threshold
are copied as they are (no request); the others are asked again and the more confident answer
wins (``labeling_monitor`` keeps both). A failed arbitration keeps the first labels and says so
in the monitor. The target is an ordinary run directory, so it resumes like any other run.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path

import msgspec

from sftlabel.labeling import Labeler, LabelingFailed
from sftlabel.model import LabeledSample, Problem
from sftlabel.runs._engine import ItemFailed, Written
from sftlabel.runs._files import FAILURES, LABELED, PROBLEMS, RunFiles

_decoder = msgspec.json.Decoder(LabeledSample)


def copy_side_files(source: Path, target: Path) -> None:
    """The source run's failures and input problems, copied into a new arbitrate run."""
    origin = RunFiles(source)
    for part in origin.parts():
        if origin.path(FAILURES, part).exists():
            (target / part).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(origin.path(FAILURES, part), target / part / FAILURES)
    if origin.path(PROBLEMS).exists():
        shutil.copyfile(origin.path(PROBLEMS), target / PROBLEMS)


class ArbitrateTask:
    """Every labeled sample of ``source``, arbitrated where a dimension is below the
    threshold."""

    kind = "arbitrate"
    noun = "sample"

    def __init__(self, labeler: Labeler, source: Path) -> None:
        self.labeler = labeler
        self.source = RunFiles(source)

    def items(self, on_problem: Callable[[Problem], None]) -> Iterator[tuple[str, LabeledSample]]:
        for part in self.source.parts():
            for line in self.source.lines(LABELED, part):
                yield part, _decoder.decode(line)

    def key(self, item: tuple[str, LabeledSample]) -> Hashable:
        return item[1].id

    async def process(self, item: tuple[str, LabeledSample]) -> Written:
        part, record = item
        counters: dict[str, int] = {}
        try:
            result = await self.labeler.rearbitrate(record, record.labels)
        except LabelingFailed as exc:
            counters["arbitration_failed"] = 1
            record.labeling_monitor = {**record.labeling_monitor, "rearbitration_error": str(exc)}
            return Written([(LABELED, record)], part=part, counters=counters)
        if result is None:
            return Written([(LABELED, record)], part=part, counters={"unchanged": 1})
        counters["arbitrated"] = 1
        for entry in result.monitor["arbitration"]:
            if entry["chosen"] == "second" and entry["first"] != entry["second"]:
                name = f"changed:{entry['dimension']}"
                counters[name] = counters.get(name, 0) + 1
            else:
                counters["kept_first"] = counters.get("kept_first", 0) + 1
        previous = record.labeling_monitor
        record.labels = result.labels
        record.labeling_monitor = {
            **previous,
            "llm_calls": int(previous.get("llm_calls", 0)) + result.monitor["llm_calls"],
            "arbitrated": True,
            "arbitration": [*previous.get("arbitration", []), *result.monitor["arbitration"]],
            "consistency_warnings": result.monitor["consistency_warnings"],
            "calls": [*previous.get("calls", []), *result.monitor["calls"]],
        }
        return Written([(LABELED, record)], part=part, counters=counters)

    def failure(self, item: tuple[str, LabeledSample], exc: ItemFailed) -> Written:
        # an arbitration that cannot be made keeps the sample's first labels
        part, record = item
        record.labeling_monitor = {**record.labeling_monitor, "rearbitration_error": exc.message}
        return Written([(LABELED, record)], part=part, counters={"arbitration_failed": 1})
