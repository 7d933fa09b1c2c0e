"""Rate control: a token bucket for RPM/TPM and an adaptive (AIMD) concurrency limiter."""

from __future__ import annotations

import math
import time
from collections import deque

import anyio


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; FIFO for waiters.

    A request larger than the burst is let through when the bucket is full, leaving it in debt,
    so a big request is delayed, never refused.
    """

    def __init__(self, per_minute: float, *, burst_seconds: float = 1.0) -> None:
        self._lock = anyio.Lock()
        self._last = time.monotonic()
        self.set_rate(per_minute, burst_seconds=burst_seconds)
        self._tokens = self.burst

    def set_rate(self, per_minute: float, *, burst_seconds: float = 1.0) -> None:
        if per_minute <= 0:
            raise ValueError("a rate limit must be positive")
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.burst = max(1.0, self.rate * burst_seconds)

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    async def acquire(self, amount: float = 1.0) -> float:
        """Wait until ``amount`` tokens are available and take them; returns the time waited."""
        waited = 0.0
        async with self._lock:
            while True:
                self._refill()
                needed = min(amount, self.burst)
                if self._tokens >= needed:
                    self._tokens -= amount
                    return waited
                delay = (needed - self._tokens) / self.rate
                waited += delay
                await anyio.sleep(delay)


class AdaptiveLimiter:
    """A concurrency limit that backs off on 429 and climbs back on success.

    Multiplicative decrease (``limit * decrease``, at most once per ``cooldown`` seconds so one
    burst of 429s counts once), additive increase (+1 per ``limit`` successes, i.e. about one
    slot per round trip), between 1 and ``maximum``. Only requests on the wire hold a slot.
    """

    def __init__(
        self,
        maximum: int,
        *,
        adaptive: bool = True,
        decrease: float = 0.7,
        cooldown: float = 1.0,
    ) -> None:
        if maximum < 1:
            raise ValueError("concurrency must be at least 1")
        self.maximum = maximum
        self.adaptive = adaptive
        self.limit = float(maximum)
        self.in_flight = 0
        self.peak = 0
        self._decrease = decrease
        self._cooldown = cooldown
        self._last_decrease = -math.inf
        self._waiters: deque[anyio.Event] = deque()

    @property
    def capacity(self) -> int:
        return max(1, int(self.limit))

    async def acquire(self) -> None:
        while self.in_flight >= self.capacity:
            event = anyio.Event()
            self._waiters.append(event)
            try:
                await event.wait()
            except BaseException:
                if event in self._waiters:
                    self._waiters.remove(event)
                elif event.is_set():
                    self._wake()  # pass on the wake-up this waiter will not use
                raise
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        free = self.capacity - self.in_flight
        while free > 0 and self._waiters:
            self._waiters.popleft().set()
            free -= 1

    def on_success(self) -> None:
        if self.adaptive and self.limit < self.maximum:
            self.limit = min(float(self.maximum), self.limit + 1.0 / self.limit)
            self._wake()

    def on_rate_limited(self) -> None:
        if not self.adaptive:
            return
        now = time.monotonic()
        if now - self._last_decrease >= self._cooldown:
            self._last_decrease = now
            self.limit = max(1.0, self.limit * self._decrease)

    async def __aenter__(self) -> AdaptiveLimiter:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


def parse_duration(text: str) -> float | None:
    """Seconds in a rate-limit reset header: ``"20ms"``, ``"1.5s"``, ``"6m0s"``, ``"3"``."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    total = 0.0
    number = ""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    index = 0
    matched = False
    while index < len(text):
        char = text[index]
        if char.isdigit() or char == ".":
            number += char
            index += 1
            continue
        unit = "ms" if text.startswith("ms", index) else char
        if unit not in units or not number:
            return None
        total += float(number) * units[unit]
        number = ""
        index += len(unit)
        matched = True
    return total if matched and not number else None
