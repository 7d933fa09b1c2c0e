"""A bounded worker pool: every item handled, at most ``concurrency`` at once, items read lazily."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import anyio
from anyio.abc import ObjectReceiveStream

T = TypeVar("T")


async def for_each(
    items: Iterable[T],
    handle: Callable[[T], Awaitable[None]],
    *,
    concurrency: int,
    stop: anyio.Event | None = None,
) -> None:
    """Await ``handle(item)`` for every item, ``concurrency`` workers pulling from a buffer of
    ``concurrency`` items (so memory stays bounded whatever the input). Once ``stop`` is set, no
    new item is started; the ones under way finish. To abandon those too, cancel the caller's
    scope."""
    send, receive = anyio.create_memory_object_stream[T](concurrency)

    def stopped() -> bool:
        return stop is not None and stop.is_set()

    async def produce() -> None:
        async with send:
            for item in items:
                if stopped():
                    break
                await send.send(item)

    async def work(queue: ObjectReceiveStream[T]) -> None:
        async with queue:
            async for item in queue:
                if not stopped():
                    await handle(item)

    async with anyio.create_task_group() as group:
        group.start_soon(produce)
        async with receive:
            for _ in range(concurrency):
                group.start_soon(work, receive.clone())
