"""How fast to send and how long to wait: the RPM/TPM buckets (``--rpm``/``--tpm``, or seeded
from ``x-ratelimit-*`` headers), the rate learned from 429s, and read timeouts sized to the
request and to the latencies seen so far."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

import httpx

from sftlabel.llm._circuit import Health
from sftlabel.llm._config import ClientConfig
from sftlabel.llm._http import number
from sftlabel.llm._limits import Clock, RateLearner, TokenBucket, parse_duration

HEADER_MARGIN = 0.98
"""Share of an ``x-ratelimit-limit-*`` the buckets use."""
TIMEOUT_BASE = 15.0
TOKENS_PER_SECOND = 20.0
"""A request's first read timeout is at most TIMEOUT_BASE + max_tokens / TOKENS_PER_SECOND."""
ADAPTIVE_FLOOR = 3.0
ADAPTIVE_FACTOR = 4.0
ADAPTIVE_SAMPLES = 20
LIMIT_HEADERS = {
    "requests": ("x-ratelimit-limit-requests", "x-ratelimit-limit-requests-minute"),
    "tokens": ("x-ratelimit-limit-tokens", "x-ratelimit-limit-tokens-minute"),
}
"""OpenAI, LiteLLM and Azure (-minute variants in some API versions) names."""


class Pacer:
    def __init__(self, config: ClientConfig, clock: Clock, health: Health) -> None:
        self.config = config
        self.clock = clock
        self.health = health
        self.rpm = TokenBucket(config.rpm, clock=clock) if config.rpm else None
        self.tpm = TokenBucket(config.tpm, clock=clock) if config.tpm else None
        self.learner = RateLearner(clock=clock) if config.adaptive else None
        self._paused_until = 0.0
        self._rpm_from_headers = config.rpm is None
        self._tpm_from_headers = config.tpm is None
        self._latencies: dict[int | None, deque[float]] = {}
        self._deadlines: dict[int | None, float] = {}
        self._slowness = 1.0

    async def wait(self, tokens: int) -> None:
        """Wait for the buckets (and an exhausted window's reset) before a request."""
        pause = self._paused_until - self.clock.now()
        if pause > 0:
            await self.health.sleep(pause)
        if self.rpm is not None:
            await self.rpm.acquire(1)
        elif self.learner is not None and self.learner.bucket is not None:
            await self.learner.bucket.acquire(1)
        if self.tpm is not None:
            await self.tpm.acquire(tokens)

    def on_rate_limited(self) -> None:
        if self.rpm is not None:
            self.rpm.drain()
        elif self.learner is not None:
            self.learner.on_rate_limited()

    def read_timeout(self, max_tokens: int | None, timeouts: int) -> float:
        """Seconds to wait for an answer: at most ``timeout``; at first at most 15 s +
        max_tokens / 20 (times the slowness seen so far, see :meth:`on_timeout`) and, with
        ``adaptive_timeout``, 4 x the 95th percentile of the latencies seen for the same
        max_tokens (at least 3 s); the cut doubles for each timeout of this request so far, so
        a server slower than the estimate (a CPU model over a long prompt) still gets up to
        ``timeout``."""
        doubled = 2.0**timeouts
        cut: float | None = None
        if max_tokens is not None:
            estimate = TIMEOUT_BASE + max_tokens / TOKENS_PER_SECOND
            cut = estimate * max(self._slowness, doubled)
        learned = self._deadlines.get(max_tokens)
        if self.config.adaptive_timeout and learned is not None:
            cut = learned * doubled if cut is None else min(cut, learned * doubled)
        if cut is None:
            return self.config.timeout
        return min(self.config.timeout, cut)

    def on_timeout(self, timeouts: int) -> None:
        """A request timed out for the ``timeouts``-th time: the estimate from max_tokens was
        too short for this server (a CPU model, a queue in front of it), so every request's
        first wait grows as this one's did, instead of each timing out in turn while the
        server goes on computing the abandoned attempts."""
        self._slowness = max(self._slowness, 2.0**timeouts)

    def observe(self, max_tokens: int | None, latency: float) -> None:
        seen = self._latencies.setdefault(max_tokens, deque(maxlen=200))
        seen.append(latency)
        if self.learner is not None:
            self.learner.on_success()
        if len(seen) >= ADAPTIVE_SAMPLES and len(seen) % 10 == 0:
            ordered = sorted(seen)
            p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
            self._deadlines[max_tokens] = max(ADAPTIVE_FLOOR, ADAPTIVE_FACTOR * p95)

    def learn(self, headers: httpx.Headers) -> None:
        """Seed the RPM/TPM buckets from ``x-ratelimit-limit-*`` when no limit was given;
        hold new requests when a window is exhausted (``x-ratelimit-remaining-*: 0``)."""
        # one pass over the headers (each ``headers.get`` is one, decoding every header)
        rates = {name: value for name, value in headers.items() if name.startswith("x-ratelimit-")}
        if not rates:
            return
        if self._rpm_from_headers:
            limit = _first_number(rates, LIMIT_HEADERS["requests"])
            if limit:
                self._rpm_from_headers = False
                self.rpm = TokenBucket(limit * HEADER_MARGIN, clock=self.clock)
        if self._tpm_from_headers:
            limit = _first_number(rates, LIMIT_HEADERS["tokens"])
            if limit:
                self._tpm_from_headers = False
                self.tpm = TokenBucket(limit * HEADER_MARGIN, clock=self.clock)
        for kind in ("requests", "tokens"):
            remaining = rates.get(f"x-ratelimit-remaining-{kind}")
            if remaining is not None and remaining.strip() in ("0", "0.0"):
                reset = parse_duration(rates.get(f"x-ratelimit-reset-{kind}", ""))
                if reset:
                    wait = min(reset, self.config.retry_after_cap)
                    self._paused_until = max(self._paused_until, self.clock.now() + wait)


def _first_number(headers: Mapping[str, str], names: tuple[str, ...]) -> float | None:
    for name in names:
        value = number(headers.get(name))
        if value:
            return value
    return None
