"""Taxonomy labeling: prompts, the two calls, validation and arbitration."""

from sftlabel.labeling._labeler import (
    ArbitrationRecord,
    CallRecord,
    Labeler,
    LabelingFailed,
    LabelResult,
)
from sftlabel.labeling._parse import ReplyFormatError, extract_json
from sftlabel.labeling._prompts import build_messages, render_sample
from sftlabel.labeling._validate import Unmapped, Validated, validate

__all__ = [
    "ArbitrationRecord",
    "CallRecord",
    "LabelResult",
    "Labeler",
    "LabelingFailed",
    "ReplyFormatError",
    "Unmapped",
    "Validated",
    "build_messages",
    "extract_json",
    "render_sample",
    "validate",
]
