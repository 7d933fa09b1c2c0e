"""From conversations to samples: pyramid slicing, sparse sampling and truncation.

Training expands a multi-turn conversation into one sample per assistant reply, each with the full
context before it (the "pyramid"): ``u1 a1 u2 a2`` gives ``[u1 a1]`` (id ``<id>_t1``) and
``[u1 a1 u2 a2]`` (id ``<id>_t2``). A conversation with a single reply, including a Pangu pseudo
multi-turn record, stays one sample with the conversation's own id. In agent traces every assistant
message is a reply.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator

import msgspec

from sftlabel.errors import UsageError
from sftlabel.model import Conversation, Location, Message, Problem, Sample, Truncation

TRUNCATION_MARK = "\n…[{count:,} characters omitted]…\n"
MIN_SHORTENED = 200
"""With ``--max-chars``: a middle message that does not fit whole is shortened into the budget
left when at least this many characters are left (else it is omitted)."""


class SparsePolicy(msgspec.Struct, kw_only=True, frozen=True):
    """Label a subset of a long pyramid.

    Every slice up to ``threshold`` is labeled; after it, only slices at geometrically spaced
    positions (``threshold * ratio**k``, rounded up) and always the last one. A skipped slice takes
    its labels from the next labeled slice after it (whose context contains it whole).
    """

    threshold: int = 5
    ratio: float = 2.0

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise UsageError("--sparse-threshold must be at least 1")
        if self.ratio <= 1.0:
            raise UsageError("--sparse-ratio must be greater than 1")

    def labeled(self, total: int) -> list[int]:
        """The 1-based reply indices that are labeled out of ``total``."""
        if total <= self.threshold:
            return list(range(1, total + 1))
        chosen = set(range(1, self.threshold + 1))
        position = float(self.threshold)
        while True:
            position *= self.ratio
            index = math.ceil(position)
            if index >= total:
                break
            chosen.add(index)
        chosen.add(total)
        return sorted(chosen)


class SliceStats(msgspec.Struct, kw_only=True):
    """Counters a slicing pass keeps (read them after iterating)."""

    conversations: int = 0
    samples: int = 0
    skipped_sparse: int = 0
    truncated: int = 0
    without_reply: int = 0
    passed_through: int = 0
    """Samples read as samples (a ``sftlabel slice`` output): not sliced again."""
    context_only: int = 0
    """Replies with ``weight: 0``: kept as context, no sample of their own."""


def reply_positions(conversation: Conversation) -> list[int]:
    """Indices (into ``messages``) of the assistant replies."""
    return [i for i, m in enumerate(conversation.messages) if m.role == "assistant"]


def _trained(message: Message) -> bool:
    """False for a reply with ``weight: 0`` (context only: it gives no sample)."""
    return message.weight is None or message.weight != 0


def check_conversation(
    conversation: Conversation, replies: list[int] | None = None
) -> list[Problem]:
    """Slicing warnings: no reply at all, or messages after the last reply."""
    if replies is None:
        replies = reply_positions(conversation)
    location = conversation.location or Location(path="<memory>")
    if not replies:
        return [
            Problem(
                severity="warning",
                code="no-reply",
                message="conversation has no assistant reply; it gives no sample",
                location=location,
                record_id=conversation.id,
            )
        ]
    trailing = len(conversation.messages) - 1 - replies[-1]
    if not trailing:
        return []
    return [
        Problem(
            severity="warning",
            code="trailing-messages",
            message=f"{trailing} message(s) after the last assistant reply belong to no sample",
            location=location,
            record_id=conversation.id,
        )
    ]


def slice_conversation(
    conversation: Conversation,
    *,
    sparse: SparsePolicy | None = None,
    max_chars: int | None = None,
    stats: SliceStats | None = None,
) -> Iterator[Sample | Problem]:
    """The samples of one conversation (and a warning when it yields none or drops messages)."""
    if stats is not None:
        stats.conversations += 1
    replies = reply_positions(conversation)
    yield from check_conversation(conversation, replies)
    if not replies:
        if stats is not None:
            stats.without_reply += 1
        return
    total = len(replies)
    labeled: Iterable[int] = sparse.labeled(total) if sparse is not None else range(1, total + 1)
    messages = conversation.messages
    weighted = any(messages[i].weight is not None for i in replies)
    if weighted:
        before = len(labeled) if isinstance(labeled, list) else total
        labeled = [k for k in labeled if _trained(messages[replies[k - 1]])]
        if stats is not None:
            stats.context_only += before - len(labeled)
    previous = 0
    for k in labeled:
        skipped = [
            _slice_id(conversation.id, j, total)
            for j in range(previous + 1, k)
            if not weighted or _trained(messages[replies[j - 1]])
        ]
        previous = k
        sample = Sample(
            id=_slice_id(conversation.id, k, total),
            source_id=conversation.id,
            source_format=conversation.source_format,
            turn_index=k,
            total_turns=total,
            messages=conversation.messages[: replies[k - 1] + 1],
            system=conversation.system,
            tools=conversation.tools,
            metadata=conversation.metadata,
            split=conversation.split,
            bucket=conversation.bucket,
            variants=conversation.variants,
            inherited_by=skipped,
            location=conversation.location,
        )
        if max_chars is not None:
            sample = truncate(sample, max_chars)
        if stats is not None:
            stats.samples += 1
            stats.skipped_sparse += len(skipped)
            stats.truncated += sample.truncation is not None
        yield sample


def _slice_id(conversation_id: str, k: int, total: int) -> str:
    return conversation_id if total == 1 else f"{conversation_id}_t{k}"


def _chars(message: Message) -> int:
    """The size of a message as the labeler sees it: its text and its tool calls."""
    size = len(message.content)
    for call in message.tool_calls:
        size += len(call.name) + len(call.arguments)
    return size


def _cut(text: str, limit: int) -> str:
    """``text`` with its middle replaced by a mark so that about ``limit`` characters remain."""
    if len(text) <= limit:
        return text
    head = limit // 2
    tail = limit - head
    mark = TRUNCATION_MARK.format(count=len(text) - limit)
    return text[:head] + mark + (text[-tail:] if tail else "")


def _shorten(message: Message, limit: int) -> Message:
    """Shorten a message's text and tool-call arguments proportionally to about ``limit``."""
    total = _chars(message)
    if total <= limit:
        return message
    ratio = limit / total
    calls = [
        msgspec.structs.replace(
            call, arguments=_cut(call.arguments, int(len(call.arguments) * ratio))
        )
        for call in message.tool_calls
    ]
    content = _cut(message.content, int(len(message.content) * ratio))
    return msgspec.structs.replace(message, content=content, tool_calls=calls)


def truncate(sample: Sample, max_chars: int) -> Sample:
    """Shorten what the labeler sees to about ``max_chars`` characters.

    Keeps the first user turn, the last reply and as many of the most recent messages between
    them as fit (messages before the first user turn go first); the next older one, when it does
    not fit whole, is shortened into what is left of the budget (at least
    :data:`MIN_SHORTENED` characters) instead of being dropped. When the first user turn and the
    reply alone are too long, their middles are cut: the reply keeps at least half the budget,
    and whichever of the two is short leaves the rest to the other; with messages between them,
    a first user turn longer than half the budget is cut to half the budget whatever the reply,
    so the slices of one conversation keep the same head (prefix caching). Returns the sample
    unchanged when it fits; otherwise a copy with ``truncation`` set.
    """
    if max_chars < 1:
        raise UsageError("--max-chars must be a positive number of characters")
    messages = sample.messages
    sizes = [_chars(m) for m in messages]
    original = sum(sizes)
    if original <= max_chars:
        return sample
    last = len(messages) - 1
    first = next((i for i, m in enumerate(messages) if m.role == "user"), last)
    if first == last:  # no user turn before the reply: keep the reply alone
        only = _shorten(messages[last], max_chars)
        kept = [only]
        shortened = int(only is not messages[last])
        middle_start = last
    else:
        half = max_chars // 2
        if last > first + 1 and sizes[first] > max_chars - half:
            # A slice with messages between: the opening's cut depends on max_chars alone, so
            # every such slice of a conversation starts alike (a prompt prefix cache serves it);
            # what the reply leaves goes to the middle.
            reply_budget = min(sizes[last], half)
            opening = _shorten(messages[first], max_chars - half)
        else:
            reply_budget = min(sizes[last], max(max_chars - sizes[first], half))
            opening = _shorten(messages[first], max_chars - reply_budget)
        reply = _shorten(messages[last], reply_budget)
        shortened = int(opening is not messages[first]) + int(reply is not messages[last])
        budget = max_chars - _chars(opening) - _chars(reply)
        middle_start = last
        while middle_start - 1 > first and sizes[middle_start - 1] <= budget:
            middle_start -= 1
            budget -= sizes[middle_start]
        middle = messages[middle_start:last]
        if middle_start - 1 > first and budget >= MIN_SHORTENED:
            # The next older message does not fit whole: shorten it into the budget left
            # rather than dropping it (a long tool result just before the reply, typically).
            middle_start -= 1
            middle = [_shorten(messages[middle_start], budget - len(TRUNCATION_MARK) - 8), *middle]
            shortened += 1
        kept = [opening, *middle, reply]
    omitted = len(messages) - len(kept)
    return msgspec.structs.replace(
        sample,
        messages=kept,
        truncation=Truncation(
            original_chars=original,
            kept_chars=sum(_chars(m) for m in kept),
            omitted_messages=omitted,
            gap_at=1 if middle_start > first + 1 and len(kept) > 1 else None,
            shortened_messages=shortened,
        ),
    )


def iter_samples(
    items: Iterable[Conversation | Sample | Problem],
    *,
    sparse: SparsePolicy | None = None,
    max_chars: int | None = None,
    limit: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
    stats: SliceStats | None = None,
) -> Iterator[Sample | Problem]:
    """Slice a stream of conversations (samples and problems pass through unchanged).

    ``limit`` stops after that many samples (without ``shuffle``, reading stops there too).
    ``shuffle`` returns the samples in a random order fixed by ``seed``: with ``limit`` it keeps a
    uniform random subset of ``limit`` samples (reservoir sampling, memory bounded by ``limit``);
    without it every sample is held in memory before the first one is returned.
    """
    if limit is not None and limit < 0:
        raise UsageError("--limit must be zero or more")
    stats = stats if stats is not None else SliceStats()

    def produce() -> Iterator[Sample | Problem]:
        for item in items:
            if isinstance(item, Problem):
                yield item
            elif isinstance(item, Sample):
                # A sample read back (what `sftlabel slice` writes) is never sliced again; only
                # --max-chars applies (a sample that fits is returned unchanged).
                sample = truncate(item, max_chars) if max_chars is not None else item
                stats.samples += 1
                stats.passed_through += 1
                stats.truncated += sample is not item
                yield sample
            else:
                yield from slice_conversation(item, sparse=sparse, max_chars=max_chars, stats=stats)

    if not shuffle:
        emitted = 0
        if limit == 0:
            return
        for item in produce():
            yield item
            if isinstance(item, Sample):
                emitted += 1
                if limit is not None and emitted >= limit:
                    return
        return
    rng = random.Random(seed)
    kept: list[Sample] = []
    seen = 0
    for item in produce():
        if isinstance(item, Problem):
            yield item
            continue
        seen += 1
        if limit is None or len(kept) < limit:
            kept.append(item)
        else:
            slot = rng.randrange(seen)
            if slot < limit:
                kept[slot] = item
    rng.shuffle(kept)
    yield from kept
