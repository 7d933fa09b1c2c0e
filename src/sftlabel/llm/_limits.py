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

    Unlimited until the first 429s. Once answers have been seen, a 429 (counted once per
    ``cooldown``) measures the rate of successful answers over the last
    ``window`` seconds -- what the server admitted while saturated, i.e. its limit -- and sets
    the rate to ``margin`` x that (or cuts it by ``decrease`` when that is not lower). While the
    rate is what holds requests back and no 429 comes, it grows: quickly (``fast`` per second)
    up to ``margin`` x the rate at which the last 429 came (the ceiling), slowly (``slow``)
    beyond it, so it settles just below the limit with few 429s. While every request is refused
    (a storm: no answer for a second) the rate is left as it is.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        window: float = 2.0,
        cooldown: float = 1.0,
        margin: float = 0.97,
        decrease: float = 0.9,
        fast: float = 0.25,
        slow: float = 0.005,
    ) -> None:
        self.clock = clock or SYSTEM_CLOCK
        self.bucket: TokenBucket | None = None
        self.ceiling: float | None = None
        """The limit as the last 429 measured it (requests per minute): what the server
        admitted while it refused, at most the rate it was sent."""
        self._successes: deque[float] = deque()
        self._window = window
        self._cooldown = cooldown
        self._margin = margin
        self._decrease = decrease
        self._fast = fast
        self._slow = slow
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
        if now - self._last_grow >= 0.5:
            elapsed = min(now - self._last_grow, 5.0)
            self._last_grow = now
            if now - bucket.waited_at < 1.0:  # the rate is what holds requests back
                rate = bucket.per_minute
                target = None if self.ceiling is None else self.ceiling * self._margin
                if target is None or rate < target:
                    rate *= (1 + self._fast) ** elapsed
                    if target is not None:
                        rate = min(rate, target)  # quickly back to just below the last 429
                else:
                    rate *= (1 + self._slow) ** elapsed
                bucket.set_rate(rate, burst_seconds=0.2)

    def on_rate_limited(self) -> None:
        now = self.clock.now()
        if self.bucket is not None:
            self.bucket.drain()
        if now - self._last_cut < self._cooldown or not self._successes:
            return  # counted already, or nothing to measure yet (the requests back off anyway)
        if self.bucket is not None and now - self._successes[-1] > 1.0:
            return  # everything is refused (a storm): a pause, not a rate to learn
        self._expire(now)
        # What the server admitted since the last cut (at most `window` ago): before it, the
        # server may have been spending a saved-up burst that inflates the first measure
        since = max(now - self._window, self._first_success, self._last_cut)
        admitted = sum(1 for at in self._successes if at >= since)
        measured = admitted / max(now - since, 1.0) * 60.0
        self._last_cut = now
        self._last_grow = now
        current = self.bucket.per_minute if self.bucket else math.inf
        # The limit is at most the rate we were sending at when the server refused, and about
        # what it admitted meanwhile (a storm refusing everything leaves it as it was)
        self.ceiling = min(measured, current)
        target = measured * self._margin
        if not 0 < target < current:
            target = current * self._decrease if math.isfinite(current) else 60.0
        if math.isfinite(current):
            target = max(target, current * 0.5)  # at most halved per cut
        target = max(target, 6.0)
        if self.bucket is None:
            self.bucket = TokenBucket(target, burst_seconds=0.2, clock=self.clock)
        else:
            self.bucket.set_rate(target, burst_seconds=0.2)
        self.bucket.drain()


class AdaptiveLimiter:
    """A concurrency limit that backs off on 429 and climbs back on success.

    Slow start: from ``initial`` slots, +``slow_start_step`` per success (x1.5 every round
    trip by default) up to ``maximum`` until the first 429, so a run does not open with a
    burst of ``maximum`` requests a rate limit must refuse. Not doubling: the requests already
    on the wire when the first 429 comes are refused too, and a gentler climb halves that
    overshoot (35 -> 15 of a 3,000 RPM bucket's first second) for ~0.3 s more of ramp.
    Then multiplicative decrease (``limit * decrease``, at most once per ``cooldown``
    seconds so one burst of 429s counts once), additive increase
    (+1 per ``limit`` successes, i.e. about one slot per round trip), between 1 and
    ``maximum``. Only requests on the wire hold a slot.
    """

    def __init__(
        self,
        maximum: int,
        *,
        adaptive: bool = True,
        decrease: float = 0.7,
        cooldown: float = 1.0,
        initial: int | None = None,
        slow_start_step: float = 0.5,
        clock: Clock | None = None,
    ) -> None:
        if maximum < 1:
            raise ValueError("concurrency must be at least 1")
        self.clock = clock or SYSTEM_CLOCK
        self.maximum = maximum
        self.adaptive = adaptive
        start = maximum if initial is None or not adaptive else min(maximum, max(1, initial))
        self.limit = float(start)
        self.slow_start = self.limit < maximum
        self.in_flight = 0
        self.peak = 0
        self._decrease = decrease
        self._cooldown = cooldown
        self._slow_start_step = slow_start_step
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
            step = self._slow_start_step if self.slow_start else 1.0 / self.limit
            self.limit = min(float(self.maximum), self.limit + step)
            self._wake()

    def on_rate_limited(self) -> None:
        self.slow_start = False
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
