"""Taxonomy labeling: prompts, the two calls, validation and arbitration."""

from sftlabel.labeling._labeler import (
    ArbitrationRecord,
    CallRecord,
    Labeler,
    LabelingFailed,
    LabelResult,
)
from sftlabel.labeling._parse import ReplyFormatError, extract_json
from sftlabel.labeling._prompts import build_messages, prompt_version, render_sample, static_prompt
from sftlabel.labeling._signals import Signals, compute_signals, render_signals, signal_warnings
from sftlabel.labeling._validate import Unmapped, Validated, validate

__all__ = [
    "ArbitrationRecord",
    "CallRecord",
    "LabelResult",
    "Labeler",
    "LabelingFailed",
    "ReplyFormatError",
    "Signals",
    "Unmapped",
    "Validated",
    "build_messages",
    "compute_signals",
    "extract_json",
    "prompt_version",
    "render_sample",
    "render_signals",
    "signal_warnings",
    "static_prompt",
    "validate",
]
