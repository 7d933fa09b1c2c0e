"""Reasoning soft labels per user turn, from the logprobs of a one-token "0"/"1" answer."""

from sftlabel.softlabel._classify import (
    FirstToken,
    LogprobsUnsupportedError,
    Reading,
    SoftLabeler,
    SoftLabelSettings,
    TurnFailed,
    first_token,
    read_labels,
)
from sftlabel.softlabel._output import (
    METADATA,
    PROBLEMS,
    SoftOutput,
    default_output,
    summarize,
)
from sftlabel.softlabel._run import (
    SoftLabelJob,
    SoftOutcome,
    SoftRunState,
    build_metadata,
    run_softlabel,
    turn_stream,
)
from sftlabel.softlabel._strategies import (
    DEFAULT_STRATEGY,
    Strategy,
    StrategyOptions,
    get_strategy,
    load_strategies,
)
from sftlabel.softlabel._turns import Turn, conversation_turns, iter_turns

__all__ = [
    "DEFAULT_STRATEGY",
    "METADATA",
    "PROBLEMS",
    "FirstToken",
    "LogprobsUnsupportedError",
    "Reading",
    "SoftLabelJob",
    "SoftLabelSettings",
    "SoftLabeler",
    "SoftOutcome",
    "SoftOutput",
    "SoftRunState",
    "Strategy",
    "StrategyOptions",
    "Turn",
    "TurnFailed",
    "build_metadata",
    "conversation_turns",
    "default_output",
    "first_token",
    "get_strategy",
    "iter_turns",
    "load_strategies",
    "read_labels",
    "run_softlabel",
    "summarize",
    "turn_stream",
]
