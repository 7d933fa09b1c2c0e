"""User turns of conversations: the unit of the soft-label job."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import msgspec

from sftlabel.model import Conversation, Location, Message, Problem, Sample


class Turn(msgspec.Struct, kw_only=True):
    """One user message to classify, with what a strategy may show around it."""

    conversation_id: str
    message_id: str
    split: str
    bucket: str
    turn_index: int
    """1-based position of the user message among the conversation's user messages."""
    message: str
    history: list[Message]
    """The messages before this one (system prompt excluded)."""
    response: str | None = None
    """The assistant reply that follows, when there is one."""
    location: Location | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        """What identifies a turn in an output file (resume skips the keys it finds)."""
        return (self.conversation_id, self.message_id, self.turn_index)


def conversation_turns(conversation: Conversation) -> Iterator[Turn]:
    """Every user message of a conversation, in order."""
    messages = conversation.messages
    number = 0
    for position, message in enumerate(messages):
        if message.role != "user":
            continue
        number += 1
        response = None
        for later in messages[position + 1 :]:
            if later.role == "assistant":
                response = later.content
                break
            if later.role == "user":
                break
        yield Turn(
            conversation_id=conversation.id,
            message_id=message.id or f"{conversation.id}#u{number}",
            split=conversation.split,
            bucket=conversation.bucket,
            turn_index=number,
            message=message.content,
            history=messages[:position],
            response=response,
            location=conversation.location,
        )


def iter_turns(items: Iterable[Conversation | Sample | Problem]) -> Iterator[Turn | Problem]:
    """Turns of every conversation of a reader's stream; problems pass through.

    Samples (a ``sftlabel slice`` output) are read as the conversations they come from: the
    slices of one conversation follow each other, and each user turn is given once.
    """
    last_source = None
    given = 0
    for item in items:
        if isinstance(item, Problem):
            yield item
        elif isinstance(item, Sample):
            if item.source_id != last_source:
                last_source, given = item.source_id, 0
            conversation = Conversation(
                id=item.source_id,
                source_format=item.source_format,
                messages=item.messages,
                system=item.system,
                split=item.split,
                bucket=item.bucket,
                location=item.location,
            )
            for turn in conversation_turns(conversation):
                if turn.turn_index > given:
                    given = turn.turn_index
                    yield turn
        else:
            yield from conversation_turns(item)
