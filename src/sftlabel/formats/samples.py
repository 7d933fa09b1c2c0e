"""sftlabel samples: what ``sftlabel slice`` writes (one :class:`~sftlabel.model.Sample` a line).

Read back, a sample is passed on unchanged, never sliced again, so ``slice`` then ``label``
gives the same samples as ``label`` alone. Labeled samples (a run's ``labeled.jsonl``) are read
the same way (their labels are not kept).
"""

from __future__ import annotations

from typing import Any

import msgspec

from sftlabel.formats._base import RecordContext
from sftlabel.formats._normalize import RecordError
from sftlabel.model import Sample

_REQUIRED = ("source_id", "turn_index", "total_turns")


class SampleFormat:
    name = "sample"
    description = "sftlabel samples (what `sftlabel slice` writes): passed on, never re-sliced"
    priority = 1
    source_key = "messages"

    def matches(self, record: dict[str, Any]) -> bool:
        return isinstance(record.get("messages"), list) and all(k in record for k in _REQUIRED)

    def parse(self, record: dict[str, Any], ctx: RecordContext) -> Sample:
        try:
            return msgspec.convert(record, Sample)
        except msgspec.ValidationError as exc:
            raise RecordError(
                "invalid-sample",
                f"looks like an sftlabel sample (it has {', '.join(_REQUIRED)}) but is not a "
                f"valid one: {exc}",
            ) from None


FORMAT = SampleFormat()
