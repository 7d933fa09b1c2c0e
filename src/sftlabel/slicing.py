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


def reply_positions(conversation: Conversation) -> list[int]:
    """Indices (into ``messages``) of the assistant replies."""
    return [i for i, m in enumerate(conversation.messages) if m.role == "assistant"]


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
    labeled = sparse.labeled(total) if sparse is not None else range(1, total + 1)
    previous = 0
    for k in labeled:
        skipped = [_slice_id(conversation.id, j, total) for j in range(previous + 1, k)]
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
    size = len(message.content)
    for call in message.tool_calls:
        size += len(call.name) + len(call.arguments)
    return size


def _shorten(message: Message, limit: int) -> Message:
    """Cut the middle of a message's text so it holds at most ``limit`` characters (plus a mark)."""
    text = message.content
    if len(text) <= limit:
        return message
    omitted = len(text) - limit
    head = limit // 2
    tail = limit - head
    shortened = text[:head] + TRUNCATION_MARK.format(count=omitted) + (text[-tail:] if tail else "")
    return msgspec.structs.replace(message, content=shortened)


def truncate(sample: Sample, max_chars: int) -> Sample:
    """Shorten what the labeler sees to about ``max_chars`` characters of message text.

    Keeps the first user turn, the last reply and as many of the most recent middle messages as
    fit; when the first user turn and the last reply alone are too long, their middles are cut.
    Returns the sample unchanged when it already fits; otherwise a copy with ``truncation`` set.
    """
    if max_chars < 1:
        raise UsageError("--max-chars must be a positive number of characters")
    messages = sample.messages
    sizes = [_chars(m) for m in messages]
    original = sum(sizes)
    if original <= max_chars:
        return sample
    last = len(messages) - 1
    if last == 0:
        only = _shorten(messages[0], max_chars)
        return msgspec.structs.replace(
            sample,
            messages=[only],
            truncation=Truncation(
                original_chars=original, kept_chars=_chars(only), shortened_messages=1
            ),
        )
    first = next((i for i, m in enumerate(messages) if m.role == "user"), 0)
    if first >= last:
        first = 0  # no user turn before the reply: keep the opening message instead
    head = list(messages[: first + 1])
    end = messages[last]
    shortened = 0
    fixed = sum(sizes[: first + 1]) + (sizes[last] if last > first else 0)
    if fixed > max_chars:
        # Share the budget: the reply gets at least half, the opening turn the rest.
        head_budget = max_chars // 2
        head_size = sum(sizes[: first + 1])
        head_budget = min(head_budget, head_size)
        end_budget = max_chars - head_budget
        if last > first and sizes[last] > end_budget:
            end = _shorten(end, end_budget)
            shortened += 1
        if head_size > head_budget:
            keep = max(head_budget - (head_size - sizes[first]), 0)
            head[first] = _shorten(head[first], keep)
            shortened += 1
        middle: list[Message] = []
        budget = 0
    else:
        budget = max_chars - fixed
        middle = []
        for index in range(last - 1, first, -1):
            if sizes[index] > budget:
                break
            budget -= sizes[index]
            middle.append(messages[index])
        middle.reverse()
    kept = head + middle + ([end] if last > first else [])
    omitted = len(messages) - len(kept)
    return msgspec.structs.replace(
        sample,
        messages=kept,
        truncation=Truncation(
            original_chars=original,
            kept_chars=sum(_chars(m) for m in kept),
            omitted_messages=omitted,
            gap_at=len(head) if omitted else None,
            shortened_messages=shortened,
        ),
    )


def iter_samples(
    items: Iterable[Conversation | Problem],
    *,
    sparse: SparsePolicy | None = None,
    max_chars: int | None = None,
    limit: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
    stats: SliceStats | None = None,
) -> Iterator[Sample | Problem]:
    """Slice a stream of conversations (problems pass through unchanged).

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
