"""The data model every stage passes on: msgspec Structs.

Readers turn input records into :class:`Conversation` objects, slicing turns conversations into
:class:`Sample` objects, and ``sftlabel slice`` writes those samples as JSON Lines. Every Struct
here round-trips through JSON with :func:`encode` / :func:`decode_sample`.

Conventions (msgspec): ``kw_only`` is repeated on every Struct (it is not inherited), defaults are
omitted from the JSON to keep lines short, and validation happens on decode.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

Role = Literal["system", "user", "assistant", "tool"]
"""Normalized message roles. Source-specific spellings (``human``, ``gpt``, ``function`` ...) are
mapped onto these by the readers."""

Severity = Literal["error", "warning"]


class ToolCall(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A tool (function) call made by an assistant message."""

    name: str = ""
    arguments: str = ""
    """The arguments as the source gave them, usually a JSON string."""
    id: str | None = None


class Message(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One message of a conversation, normalized.

    ``content`` is what the labeler sees: training markers and hidden-reasoning blocks are removed
    from it. The removed reasoning text is kept in ``reasoning``.
    """

    role: Role
    content: str = ""
    reasoning: str | None = None
    tool_calls: list[ToolCall] = []
    tool_call_id: str | None = None
    """For ``tool`` messages: the id of the call this message answers."""
    name: str | None = None
    """For ``tool`` messages: the tool's name, when the source gives it."""
    id: str | None = None
    """A source message id (for example ``messageId`` of Copilot turn records)."""
    weight: float | None = None
    """The source's training weight (OpenAI fine-tuning format): an assistant message with
    weight 0 is kept as context but gives no sample (it is not trained on, so not labeled)."""


class Location(msgspec.Struct, kw_only=True, omit_defaults=True, frozen=True):
    """Where a record came from: a file and a 1-based line (JSONL) or 0-based index (JSON array)."""

    path: str
    line: int | None = None
    index: int | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.path}:{self.line}"
        if self.index is not None:
            return f"{self.path}[{self.index}]"
        return self.path


class Conversation(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A normalized conversation read from any supported input format."""

    id: str
    source_format: str
    messages: list[Message]
    system: str | None = None
    """The system prompt (leading system messages, Pangu ``meta_prompt`` ...), joined."""
    tools: list[Any] | None = None
    """Tool definitions offered to the model, as the source gave them."""
    metadata: dict[str, Any] = {}
    split: str = ""
    bucket: str = ""
    variants: list[str] = []
    """Format-specific features found in the record (for example Pangu ``slow-thinking``)."""
    id_generated: bool = False
    """True when the record had no id and one was derived from its content."""
    location: Location | None = None


class Truncation(msgspec.Struct, kw_only=True, omit_defaults=True):
    """How a sample was shortened to fit ``--max-chars``."""

    original_chars: int
    kept_chars: int
    omitted_messages: int = 0
    gap_at: int | None = None
    """Index in ``Sample.messages`` before which the omitted messages stood."""
    shortened_messages: int = 0
    """Messages whose text was cut in the middle (the first user turn, the last reply, or the
    oldest middle message kept)."""


class Sample(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One labeling unit: a conversation prefix that ends with an assistant reply.

    ``id`` is ``<source_id>_t<k>`` for the k-th reply of a multi-reply conversation and the
    conversation id itself when it has a single reply.
    """

    id: str
    source_id: str
    source_format: str
    turn_index: int
    """1-based index of the reply this sample ends with."""
    total_turns: int
    """Number of assistant replies in the source conversation."""
    messages: list[Message]
    system: str | None = None
    tools: list[Any] | None = None
    metadata: dict[str, Any] = {}
    split: str = ""
    bucket: str = ""
    variants: list[str] = []
    truncation: Truncation | None = None
    inherited_by: list[str] = []
    """Sparse slicing: ids of skipped slices that take their labels from this sample."""
    location: Location | None = None

    @property
    def truncated(self) -> bool:
        return self.truncation is not None


class LabeledSample(Sample, kw_only=True, omit_defaults=True):
    """A sample with its taxonomy labels: one line of a run's ``labeled.jsonl``.

    ``labels`` holds one key per taxonomy category plus ``confidence`` and ``unmapped``;
    ``labeling_monitor`` holds ``llm_calls``, ``arbitrated``, ``validation_issues``,
    ``consistency_warnings`` and the per-call trace (the shape of the baseline runs).
    ``index`` is the sample's position in the input, so outputs can be put back in order.
    """

    index: int = -1
    labels: dict[str, Any] = {}
    labeling_monitor: dict[str, Any] = {}


class Failure(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A sample that could not be labeled: one line of a run's ``failures.jsonl``."""

    id: str
    index: int
    reason: str
    error: str
    sample: Sample
    monitor: dict[str, Any] = {}
    session: int | None = None
    """The session (1 = the first run, 2 = the first resume ...) of this attempt."""
    attempts: int = 1
    history: list[dict[str, Any]] = []
    """Earlier failed attempts of the same sample (reason, error, session), oldest first."""


class TurnLabel(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A reasoning soft label for one user turn: one line of a ``softlabel`` output file.

    The first seven fields are the documented output format (camelCase as the Copilot data has
    it). 0 means the message *requires* reasoning, 1 that it does not; ``soft_label`` is
    P("1") / (P("0") + P("1")). A failed turn has ``error`` (and ``reason``) instead of the
    three label fields, which are then left out of the JSON.
    """

    conversationId: str
    messageId: str
    split: str
    bucket: str
    hard_label: int | UnsetType = UNSET
    soft_label: float | UnsetType = UNSET
    rationale: str | UnsetType | None = UNSET
    turnIndex: int = 0
    """1-based index of the user turn in its conversation."""
    p0: float | None = None
    """P("0") from the first token's logprobs (None when it was not observed)."""
    p1: float | None = None
    soft_label_range: list[float] | None = None
    """When a label token was censored: the soft labels its possible probabilities allow."""
    token: str | None = None
    """The token the model generated."""
    method: str = ""
    """How the soft label was obtained: ``top_logprobs`` (both label tokens seen),
    ``censored`` (one missing: bounded by what top-k leaves), ``resolved`` (the missing one was
    read by a second biased request), ``first-token-not-label`` (the first token was not a label;
    the likelier label token of the top-k was used)."""
    censored: list[str] = []
    """Label tokens missing from top_logprobs ("0", "1")."""
    strategy: str = ""
    model: str = ""
    error: str | None = None
    reason: str | None = None
    """Why the turn failed: ``rejected``, ``retries-exhausted``, ``no-label`` ..."""
    index: int = -1
    """Position of the turn in the input (for ordering and resume)."""
    monitor: dict[str, Any] = {}
    """Calls, tokens, cost, latency of this turn."""

    @property
    def failed(self) -> bool:
        return self.error is not None


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Something wrong with an input record.

    ``error``: the record could not be used. ``warning``: it was used, but something in it was
    repaired, skipped or looks wrong.
    """

    severity: Severity
    code: str
    message: str
    location: Location
    record_id: str | None = None

    @property
    def record_level(self) -> bool:
        """True when the problem is about one record (it has a line or index), not a whole file."""
        return self.location.line is not None or self.location.index is not None

    def __str__(self) -> str:
        rid = f" ({self.record_id})" if self.record_id else ""
        return f"{self.location}{rid}: {self.severity}: {self.message} [{self.code}]"


_ENCODER = msgspec.json.Encoder()
_SAMPLE_DECODER = msgspec.json.Decoder(Sample)
_CONVERSATION_DECODER = msgspec.json.Decoder(Conversation)


def encode(obj: Any) -> bytes:
    """Encode any model Struct (or plain data) to JSON bytes."""
    return _ENCODER.encode(obj)


def decode_sample(data: bytes | str) -> Sample:
    """Decode (and validate) one JSON-encoded :class:`Sample`."""
    return _SAMPLE_DECODER.decode(data)


def decode_conversation(data: bytes | str) -> Conversation:
    """Decode (and validate) one JSON-encoded :class:`Conversation`."""
    return _CONVERSATION_DECODER.decode(data)
