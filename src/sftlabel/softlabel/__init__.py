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
from sftlabel.softlabel._prompts import classification_messages, rationale_messages
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
    "FirstToken",
    "LogprobsUnsupportedError",
    "Reading",
    "SoftLabelSettings",
    "SoftLabeler",
    "Strategy",
    "StrategyOptions",
    "Turn",
    "TurnFailed",
    "classification_messages",
    "conversation_turns",
    "first_token",
    "get_strategy",
    "iter_turns",
    "load_strategies",
    "rationale_messages",
    "read_labels",
]
