"""A virtual clock for the LLM client's limiters (no wall-clock timing in unit tests)."""

from __future__ import annotations

import heapq
import itertools

import anyio.lowlevel


class FakeClock:
    """Virtual monotonic time: ``sleep`` jumps the clock to the earliest sleeper's wake-up once
    every other task has had a few turns (so nothing really waits)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self._heap: list[tuple[float, int, object]] = []
        self._seq = itertools.count()
        self.slept = 0.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        token = object()
        wake = self.t + seconds
        heapq.heappush(self._heap, (wake, next(self._seq), token))
        while True:
            for _ in range(8):
                await anyio.lowlevel.checkpoint()
            if self._heap[0][2] is token:
                heapq.heappop(self._heap)
                self.slept += max(0.0, wake - self.t)
                self.t = max(self.t, wake)
                return
