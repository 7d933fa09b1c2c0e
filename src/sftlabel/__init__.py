"""sftlabel: label SFT training data with LLMs.

The public library API; the CLI (``sftlabel``) is a thin layer over it.
"""

from sftlabel._version import __version__
from sftlabel.api import (
    RunResult,
    aarbitrate,
    agenerate,
    alabel,
    apply_review,
    arbitrate,
    asoftlabel,
    compare,
    generate,
    label,
    open_run,
    report,
    review,
    softlabel,
)
from sftlabel.errors import (
    ConfigError,
    InputError,
    SftlabelError,
    TaxonomyError,
    UsageError,
)
from sftlabel.formats import Reader
from sftlabel.model import (
    Conversation,
    Location,
    Message,
    Problem,
    Sample,
    ToolCall,
    Truncation,
)
from sftlabel.slicing import SparsePolicy, iter_samples, slice_conversation, truncate
from sftlabel.taxonomy import Taxonomy, load_taxonomy

__all__ = [
    "ConfigError",
    "Conversation",
    "InputError",
    "Location",
    "Message",
    "Problem",
    "Reader",
    "RunResult",
    "Sample",
    "SftlabelError",
    "SparsePolicy",
    "Taxonomy",
    "TaxonomyError",
    "ToolCall",
    "Truncation",
    "UsageError",
    "__version__",
    "aarbitrate",
    "agenerate",
    "alabel",
    "apply_review",
    "arbitrate",
    "asoftlabel",
    "compare",
    "generate",
    "iter_samples",
    "label",
    "load_taxonomy",
    "open_run",
    "report",
    "review",
    "slice_conversation",
    "softlabel",
    "truncate",
]
