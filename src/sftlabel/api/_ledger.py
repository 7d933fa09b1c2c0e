"""Run-wide limits and money for ``--engine ray``: one actor, leases in batches.

One Ray actor (:class:`Ledger`) holds the run's ``--max-cost`` ledger and its ``--rpm``/``--tpm``
token buckets. Workers never ask it per request: a worker's :class:`LeasedBudget` leases a slice
of the remaining budget (several requests' worst case at a time) and spends it locally; its
:class:`LeasedBucket` leases a few tokens at a time (about 50 ms of the run's rate). The client
sees the ordinary :class:`~sftlabel.llm.Budget` and :class:`~sftlabel.llm.TokenBucket`
interfaces, so there is no second client.

The cap holds for the cluster: every dollar a worker may spend was leased first, and the sum
of the leases never passes the cap (what a worker leased and did not spend is given back when
its shard ends). Near the cap, a worker whose lease cannot be renewed stops with "budget" while
another may still hold a small unspent lease: the run stops a little below the cap, never above.
"""

from __future__ import annotations

from typing import Any

from sftlabel.llm import Budget, BudgetExceededError, Reservation, TokenBucket

LEASE_SECONDS = 0.05
"""A token lease covers about this much of the run-wide rate."""
BUDGET_SLICES = 16
"""A budget lease is at least 1/BUDGET_SLICES of the cap per worker running at once."""


class _Rate:
    """The actor's token bucket (plain arithmetic: the actor is single-threaded)."""

    def __init__(self, per_minute: float, clock: Any) -> None:
        self.rate = per_minute / 60.0
        self.burst = max(1.0, self.rate)
        self.tokens = self.burst
        self.clock = clock
        self.last = clock()

    def take(self, want: float, need: float) -> tuple[float, float]:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        needed = min(need, self.burst)  # a request larger than the burst goes into debt
        if self.tokens < needed - 1e-6:
            return 0.0, (needed - self.tokens) / self.rate
        grant = max(need, min(want, self.tokens))
        self.tokens -= grant
        return grant, 0.0

    def drain(self) -> None:
        self.tokens = min(self.tokens, 0.0)


class Ledger:
    """The run-wide budget and rate buckets (a Ray actor: ``ray.remote(Ledger)``)."""

    def __init__(
        self, cap: float | None, spent: float, rpm: float | None, tpm: float | None
    ) -> None:
        import time

        self.cap = cap
        self.committed = spent
        """Spent before this session, plus every lease still out, plus what was spent."""
        self.rates = {
            kind: _Rate(value, time.monotonic)
            for kind, value in (("rpm", rpm), ("tpm", tpm))
            if value
        }

    def lease(self, amount: float) -> float:
        """Up to ``amount`` USD of the budget (0 when none is left)."""
        if self.cap is None:
            return amount
        grant = max(0.0, min(amount, self.cap - self.committed))
        self.committed += grant
        return grant

    def give_back(self, amount: float) -> None:
        self.committed -= max(0.0, amount)

    def remaining(self) -> float | None:
        return None if self.cap is None else self.cap - self.committed

    def take(self, kind: str, want: float, need: float) -> tuple[float, float]:
        """Tokens of a bucket: (granted, 0) or (0, seconds to wait)."""
        return self.rates[kind].take(want, need)

    def drain(self, kind: str) -> None:
        """A 429 came: the server's bucket is empty, so is the run's."""
        self.rates[kind].drain()


class LeasedBudget(Budget):
    """A worker's share of the run's budget, leased from the :class:`Ledger` in slices."""

    def __init__(self, ledger: Any, ray: Any, *, slice_: float) -> None:
        super().__init__(0.0)
        self._ledger = ledger
        self._ray = ray
        self._slice = slice_

    def reserve(self, amount: float) -> Reservation:
        with self._lock:
            short = amount - self.remaining
        if short > 1e-12:
            # a blocking call, once per slice (a few ms): never one per request
            granted = float(self._ray.get(self._ledger.lease.remote(max(short, self._slice))))
            with self._lock:
                self.cap += granted
        try:
            return super().reserve(amount)
        except BudgetExceededError as exc:
            left = self._ray.get(self._ledger.remaining.remote())
            raise BudgetExceededError(
                f"budget reached across the cluster: ${left or 0.0:.4f} of the cap is left "
                f"unleased; the next request may cost up to ${amount:.4f}",
                hint=exc.hint,
            ) from None

    def close(self) -> None:
        """Give back what was leased and not spent (the shard ended)."""
        with self._lock:
            unused = self.cap - self.spent - self.reserved
            self.cap -= unused
        if unused > 0:
            self._ray.get(self._ledger.give_back.remote(unused))


class LeasedBucket(TokenBucket):
    """A worker's side of a run-wide token bucket: tokens leased in small batches."""

    def __init__(self, ledger: Any, kind: str, per_minute: float, *, workers: int) -> None:
        super().__init__(per_minute)
        self._ledger = ledger
        self._kind = kind
        self._local = 0.0
        self._batch = max(1.0, per_minute / 60.0 * LEASE_SECONDS / max(1, workers))

    async def acquire(self, amount: float = 1.0) -> float:
        waited = 0.0
        async with self._lock:
            while self._local < amount - 1e-6:
                need = amount - self._local
                granted, wait = await self._ledger.take.remote(self._kind, need + self._batch, need)
                self._local += granted
                if granted <= 0:
                    waited += wait
                    self.waited_at = self.clock.now()
                    await self.clock.sleep(wait)
            self._local -= amount
            return waited

    def drain(self) -> None:
        self._local = 0.0
        self._ledger.drain.remote(self._kind)
