"""A bounded pool: every item handled, at most ``concurrency`` at once, items read lazily, and
the items of a prefix group (the slices of one conversation) in a cache-friendly order."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import TypeVar

import anyio
import anyio.lowlevel

T = TypeVar("T")


async def for_each(
    items: Iterable[T],
    handle: Callable[[T], Awaitable[None]],
    *,
    concurrency: int,
    group: Callable[[T], Hashable | None] | None = None,
    stop: anyio.Event | None = None,
    lookahead: int | None = None,
) -> None:
    """Await ``handle(item)`` for every item, at most ``concurrency`` at once, items read
    lazily (only while a slot would be idle).

    With ``group``, items that share a cacheable prompt prefix are ordered for it: consecutive
    items with the same ``group`` key (not None) form a group: the slices of one
    conversation, each a prefix of the next. The group's last item (the longest prompt) is
    handled first; once it has finished, the others of its group start, so each of them finds
    its prompt's prefix in the provider's cache. Meanwhile other groups and ungrouped items fill
    the ``concurrency`` slots, so a long group never holds more than one slot while it waits
    (no convoy). At most ``lookahead`` items (default ``16 * concurrency``) are read and not
    yet started, so memory stays bounded (items are read only while slots would be idle, and
    the waiting ones are slices sharing their leader's messages); a group longer than a quarter
    of that is split into parts, each led by its last item. Every item read is handled unless
    ``stop`` is set (then no new item starts; the ones under way finish).
    """
    limit = max(lookahead if lookahead is not None else 16 * concurrency, concurrency, 4)
    part = limit // 4
    source = iter(items)
    ready: deque[T] = deque()
    open_group: list[T] = []
    open_key: Hashable | None = None
    exhausted = False
    buffered = 0  # read, not yet started
    running = 0
    waiting: dict[int, list[T]] = {}  # id of a group's leader (its last item) -> the others
    wake = anyio.Event()

    def stopped() -> bool:
        return stop is not None and stop.is_set()

    def close_group() -> None:
        nonlocal open_group, open_key
        if open_group:
            *followers, leader = open_group
            waiting[id(leader)] = followers
            ready.append(leader)
        open_group, open_key = [], None

    def read() -> None:
        nonlocal exhausted, buffered, open_key
        try:
            item = next(source)
        except StopIteration:
            exhausted = True
            close_group()
            return
        buffered += 1
        key = group(item) if group is not None else None
        if key is None or key != open_key or len(open_group) >= part:
            close_group()
        if key is None:
            ready.append(item)
        else:
            open_key = key
            open_group.append(item)

    async def run(item: T) -> None:
        nonlocal running
        try:
            await handle(item)
        finally:
            running -= 1
            ready.extendleft(reversed(waiting.pop(id(item), [])))
            wake.set()

    async with anyio.create_task_group() as tasks:
        while True:
            await anyio.lowlevel.checkpoint()  # a cancelled run starts nothing more
            while (
                not exhausted
                and not stopped()
                and buffered < limit
                and len(ready) < concurrency - running
            ):
                read()
            while ready and running < concurrency and not stopped():
                item = ready.popleft()
                buffered -= 1
                running += 1
                tasks.start_soon(run, item)
            if stopped() or (exhausted and not ready and running == 0):
                break
            await wake.wait()
            wake = anyio.Event()
