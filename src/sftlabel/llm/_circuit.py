"""Run-wide endpoint health: a circuit breaker for outages, dead-endpoint detection and the
no-progress budget.

* Failures of the endpoint's (transport errors, 5xx, timeouts, malformed answers) from several
  requests in a row open the circuit: nothing is sent but one probe, retried with backoff
  (1 s doubling to 30 s); the first answer closes it. An outage costs time, not requests.
* With no success yet, connection failures (refused, DNS, TLS, connect timeout) and non-JSON
  answers for ``dead_after`` seconds make the endpoint *dead*.
* No successful answer anywhere for ``max_unavailable`` seconds (429s, an outage) is fatal too.
Both fatal cases raise :class:`EndpointUnavailableError` to every waiting caller.
"""

from __future__ import annotations

import math
import time

import anyio

from sftlabel.llm._errors import EndpointUnavailableError
from sftlabel.llm._limits import SYSTEM_CLOCK, Clock

DEAD_KINDS = frozenset({"connect", "not-json"})
OPEN_AFTER = 5
"""Consecutive endpoint failures (from at least ``min(3, concurrency)`` requests) that open the
circuit."""
PROBE_INITIAL = 1.0
PROBE_MAX = 30.0


class Health:
    """Shared by every request of one client."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        concurrency: int = 50,
        dead_after: float = 30.0,
        max_unavailable: float = 600.0,
        describe: str = "the endpoint",
    ) -> None:
        self.clock = clock or SYSTEM_CLOCK
        self.dead_after = dead_after
        self.max_unavailable = max_unavailable
        self.describe = describe
        self.successes = 0
        self.fatal: EndpointUnavailableError | None = None
        self.open = False
        self.opened_at: float | None = None
        self.unavailable_total = 0.0
        self._distinct_needed = min(3, max(1, concurrency))
        self._streak = 0
        self._streak_requests: set[int] = set()
        self._streak_start: float | None = None
        self._dead_since: float | None = None
        self._last_error = ""
        self._last_kind = ""
        self._progress: float | None = None  # last success, or the first request
        self._active = 0
        self._probe_at = 0.0
        self._probe_wait = PROBE_INITIAL
        self._probing = False
        self._changed = anyio.Event()

    # --- what callers see -----------------------------------------------------------------

    @property
    def unavailable_since(self) -> float | None:
        """Wall-clock epoch seconds since when the endpoint is unavailable, None when healthy."""
        if not self.open or self._streak_start is None:
            return None
        return time.time() - (self.clock.now() - self._streak_start)

    def started(self) -> None:
        """A request is about to be sent (the no-progress budget counts from the first)."""
        if self._progress is None:
            self._progress = self.clock.now()

    def enter(self) -> None:
        """A request begins. Idle time (no request at all) is no lack of progress."""
        if self._active == 0 and self._progress is not None:
            self._progress = max(self._progress, self.clock.now())
        self._active += 1

    def leave(self) -> None:
        self._active -= 1

    def check(self) -> None:
        """Raise the fatal error if there is one, or if the no-progress budget ran out."""
        if self.fatal is not None:
            raise self.fatal
        if self._progress is not None:
            stalled = self.clock.now() - self._progress
            if stalled >= self.max_unavailable:
                self._fail(
                    f"no successful answer from {self.describe} for {stalled:.0f} s "
                    f"(last error: {self._last_error or 'none'})",
                    hint="the endpoint is down or rate-limits every request; try again later "
                    "(--resume continues the run)",
                )

    async def admit(self) -> bool:
        """Wait while the circuit is open; True when this request is the probe."""
        while True:
            self.check()
            if not self.open:
                return False
            if not self._probing:
                self._probing = True
                try:
                    await self._sleep_until(self._probe_at)
                    self.check()
                except BaseException:
                    self._probing = False
                    self._notify()
                    raise
                return True
            changed = self._changed
            await changed.wait()

    async def _sleep_until(self, when: float) -> None:
        while (left := when - self.clock.now()) > 0:
            await self.clock.sleep(min(left, 1.0))
            self.check()

    async def sleep(self, seconds: float) -> None:
        """Sleep (a backoff), waking early with the fatal error if one comes."""
        await self._sleep_until(self.clock.now() + seconds)

    # --- outcomes -------------------------------------------------------------------------

    def on_success(self, probe: bool) -> None:
        now = self.clock.now()
        self.successes += 1
        self._progress = now
        self._dead_since = None
        self._streak = 0
        self._streak_requests.clear()
        if self.open:
            if self.opened_at is not None:
                self.unavailable_total += now - self.opened_at
            self.open = False
            self.opened_at = None
            self._probe_wait = PROBE_INITIAL
            self._notify()
        self._streak_start = None
        if probe:
            self._probing = False

    def end_probe(self) -> None:
        """The probe ended without an answer either way (a cache hit, a cancellation)."""
        if self._probing:
            self._probing = False
            self._notify()

    def on_rate_limited(self, probe: bool) -> None:
        """A 429 is an answer: the endpoint is up (but it does not count as progress)."""
        self._streak = 0
        self._streak_requests.clear()
        if self.open:
            self.open = False
            self._notify()
        if probe:
            self._probing = False

    def on_failure(self, request_id: int, kind: str, message: str, probe: bool) -> None:
        now = self.clock.now()
        self._last_error = message
        self._last_kind = kind
        if self._streak == 0:
            self._streak_start = now
        self._streak += 1
        self._streak_requests.add(request_id)
        if self.successes == 0 and kind in DEAD_KINDS:
            if self._dead_since is None:
                self._dead_since = now
            if now - self._dead_since >= self.dead_after:
                self._dead(message)
        if probe:
            self._probing = False
            self._probe_wait = min(self._probe_wait * 2, PROBE_MAX)
            self._schedule_probe(now)
            self._notify()
        elif not self.open and (
            self._streak >= OPEN_AFTER and len(self._streak_requests) >= self._distinct_needed
        ):
            self.open = True
            self.opened_at = now
            self._schedule_probe(now)
        self.check()

    def _schedule_probe(self, now: float) -> None:
        self._probe_at = now + self._probe_wait
        if self.successes == 0 and self._dead_since is not None:
            # never wait past the moment the endpoint counts as dead: probe right then
            self._probe_at = min(self._probe_at, self._dead_since + self.dead_after + 0.01)

    def _dead(self, message: str) -> None:
        if self._last_kind == "not-json":
            what = "it answers with something that is not a chat completion"
            hint = (
                "--base-url must be the OpenAI-compatible API root (it usually ends in /v1), "
                "not a web page or a proxy's login page"
            )
        else:
            what = "could not connect"
            hint = (
                "check --base-url (host, port, http/https) and that the server is running and "
                "reachable from here"
            )
        self._fail(
            f"{self.describe} is unavailable: {what} ({message}); tried for "
            f"{self.dead_after:.0f} s with no successful answer",
            hint=hint,
        )

    def _fail(self, message: str, *, hint: str | None) -> None:
        if self.fatal is None:
            self.fatal = EndpointUnavailableError(message, hint=hint or None)
            self._notify()
        raise self.fatal

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


def backoff(step: int, *, initial: float = 0.5, maximum: float = 30.0) -> float:
    """Exponential backoff for the ``step``-th retry (0-based), without jitter."""
    return min(maximum, initial * math.pow(2.0, min(step, 30)))
