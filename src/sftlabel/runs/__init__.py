"""Run directories: streaming writers, checkpoint/resume, stats."""

from sftlabel.runs._files import (
    DASHBOARD,
    FAILURES,
    LABELED,
    LABELED_ARRAY,
    MANIFEST,
    MONITOR,
    PROBLEMS,
    STATS,
    RunFiles,
)
from sftlabel.runs._job import Estimate, LabelJob, estimate, execute, finalize, start
from sftlabel.runs._manifest import (
    LabelOptions,
    RunManifest,
    Session,
    now,
    read_manifest,
    taxonomy_ref,
    write_manifest,
)
from sftlabel.runs._runner import Outcome, RunState, run_label, sample_stream
from sftlabel.runs._stats import compute_stats

__all__ = [
    "DASHBOARD",
    "FAILURES",
    "LABELED",
    "LABELED_ARRAY",
    "MANIFEST",
    "MONITOR",
    "PROBLEMS",
    "STATS",
    "Estimate",
    "LabelJob",
    "LabelOptions",
    "Outcome",
    "RunFiles",
    "RunManifest",
    "RunState",
    "Session",
    "compute_stats",
    "estimate",
    "execute",
    "finalize",
    "now",
    "read_manifest",
    "run_label",
    "sample_stream",
    "start",
    "taxonomy_ref",
    "write_manifest",
]
