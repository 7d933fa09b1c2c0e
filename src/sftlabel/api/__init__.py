"""The library API: what the ``sftlabel`` commands call, for notebooks and embedding.

Every long-running function has a synchronous form and an ``a...`` coroutine, accepts an
injected httpx ``transport`` (tests, embedding), a progress callback and a
:class:`~sftlabel.runs.RunControl` to stop it, and returns a typed :class:`RunResult`.
"""

from sftlabel.api._arbitrate import aarbitrate, arbitrate
from sftlabel.api._endpoint import client_config, settings_for
from sftlabel.api._generate import GenerateOptions, agenerate, generate, generate_dry_run
from sftlabel.api._label import alabel, label
from sftlabel.api._labelplan import label_estimate
from sftlabel.api._select import SelectSummary, select
from sftlabel.api._select_plan import SelectQuery
from sftlabel.api._session import RunResult, SessionFigures
from sftlabel.api._softlabel import asoftlabel, softlabel, softlabel_estimate
from sftlabel.api._softrun import SoftOptions
from sftlabel.api._status import RunStatus, status
from sftlabel.api._views import apply_review, compare, open_run, report, review

__all__ = [
    "GenerateOptions",
    "RunResult",
    "RunStatus",
    "SelectQuery",
    "SelectSummary",
    "SessionFigures",
    "SoftOptions",
    "aarbitrate",
    "agenerate",
    "alabel",
    "apply_review",
    "arbitrate",
    "asoftlabel",
    "client_config",
    "compare",
    "generate",
    "generate_dry_run",
    "label",
    "label_estimate",
    "open_run",
    "report",
    "review",
    "select",
    "settings_for",
    "softlabel",
    "softlabel_estimate",
    "status",
]
