"""Rate control: a clock, a token bucket for RPM/TPM, a request rate learned from 429s and an
adaptive (AIMD) concurrency limiter. Everything takes a :class:`Clock`, so tests inject one."""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Protocol

import anyio


class Clock(Protocol):
    """Monotonic seconds and an async sleep (tests pass a fake one)."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """``time.monotonic`` and ``anyio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(seconds, 0.0))


SYSTEM_CLOCK = SystemClock()


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; FIFO for waiters.

    A request larger than the burst is let through when the bucket is full, leaving it in debt,
    so a big request is delayed, never refused.
    """

    def __init__(
        self, per_minute: float, *, burst_seconds: float = 1.0, clock: Clock | None = None
    ) -> None:
        self.clock = clock or SYSTEM_CLOCK
        self._lock = anyio.Lock()
        self._last = self.clock.now()
        self.waited_at = -math.inf
        """When an acquire last had to wait (the bucket is what limits the run)."""
        self.set_rate(per_minute, burst_seconds=burst_seconds)
        self._tokens = self.burst

    def set_rate(self, per_minute: float, *, burst_seconds: float = 1.0) -> None:
        if per_minute <= 0:
            raise ValueError("a rate limit must be positive")
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.burst = max(1.0, self.rate * burst_seconds)
        if hasattr(self, "_tokens"):
            self._tokens = min(self._tokens, self.burst)

    def _refill(self) -> None:
        now = self.clock.now()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def drain(self) -> None:
        """Forget the saved-up tokens (after a 429: the server's bucket is empty too)."""
        self._refill()
        self._tokens = min(self._tokens, 0.0)

    async def acquire(self, amount: float = 1.0) -> float:
        """Wait until ``amount`` tokens are available and take them; returns the time waited."""
        waited = 0.0
        async with self._lock:
            while True:
                self._refill()
                needed = min(amount, self.burst)
                if self._tokens >= needed - 1e-6:  # float rounding must not spin
                    self._tokens -= amount
                    return waited
                delay = (needed - self._tokens) / self.rate
                waited += delay
                self.waited_at = self.clock.now()
                await self.clock.sleep(delay)


class RateLearner:
    """A request rate learned from 429s when the server sends no limit headers.

    Unlimited until the first 429. A 429 (counted once per ``cooldown``) sets the rate to
    ``margin`` x the rate of successful answers over the last ``window`` seconds (what the
    server admitted while it was saturated), or cuts it by ``decrease`` when that is not lower;
    every second without a 429 in which the rate was what held requests back adds ``increase``
    (multiplicative), so the rate probes upwards again and settles just below the limit.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        window: float = 3.0,
        cooldown: float = 1.5,
        margin: float = 0.97,
        decrease: float = 0.9,
        increase: float = 0.01,
    ) -> None:
        self.clock = clock or SYSTEM_CLOCK
        self.bucket: TokenBucket | None = None
        self._successes: deque[float] = deque()
        self._window = window
        self._cooldown = cooldown
        self._margin = margin
        self._decrease = decrease
        self._increase = increase
        self._last_cut = -math.inf
        self._last_grow = -math.inf
        self._first_success = math.inf

    @property
    def per_minute(self) -> float | None:
        return self.bucket.per_minute if self.bucket else None

    def _expire(self, now: float) -> None:
        while self._successes and self._successes[0] < now - self._window:
            self._successes.popleft()

    def on_success(self) -> None:
        now = self.clock.now()
        self._first_success = min(self._first_success, now)
        self._successes.append(now)
        self._expire(now)
        bucket = self.bucket
        if bucket is None or now - self._last_cut < self._cooldown:
            return
        if now - self._last_grow >= 1.0:
            limited = now - bucket.waited_at < 1.0
            if limited and self._last_grow > -math.inf:
                steps = min(now - self._last_grow, 5.0)
                bucket.set_rate(
                    bucket.per_minute * (1 + self._increase) ** steps, burst_seconds=0.2
                )
            self._last_grow = now

    def on_rate_limited(self) -> None:
        now = self.clock.now()
        if now - self._last_cut < self._cooldown:
            if self.bucket is not None:
                self.bucket.drain()
            return
        self._last_cut = now
        self._expire(now)
        span = max(min(self._window, now - self._first_success), 1.0)
        measured = len(self._successes) / span * 60.0 * self._margin
        current = self.bucket.per_minute if self.bucket else math.inf
        target = measured if 0 < measured < current else current * self._decrease
        if not math.isfinite(target) or target <= 0:
            target = 60.0  # a 429 before any answer: start at one request a second
        target = max(target, 6.0)
        if self.bucket is None:
            self.bucket = TokenBucket(target, burst_seconds=0.2, clock=self.clock)
        else:
            self.bucket.set_rate(target, burst_seconds=0.2)
        self.bucket.drain()
        self._last_grow = now


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
        clock: Clock | None = None,
    ) -> None:
        if maximum < 1:
            raise ValueError("concurrency must be at least 1")
        self.clock = clock or SYSTEM_CLOCK
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
        now = self.clock.now()
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
