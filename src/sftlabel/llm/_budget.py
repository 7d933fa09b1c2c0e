"""A hard spending cap shared by the clients of a run (label + arbiter).

Before each HTTP attempt a client reserves the request's worst-case cost (estimated prompt
tokens + ``max_tokens`` at the model's prices); the answer settles the reservation with the
actual cost, a failure releases it. A request whose worst case does not fit is never sent.
"""

from __future__ import annotations

import threading

from sftlabel.llm._errors import BudgetExceededError


class Reservation:
    __slots__ = ("amount", "open")

    def __init__(self, amount: float) -> None:
        self.amount = amount
        self.open = True


class Budget:
    """``cap`` USD, of which ``spent`` is already gone (e.g. by earlier sessions of a run)."""

    def __init__(self, cap: float, spent: float = 0.0) -> None:
        if cap < 0:
            raise ValueError("a budget must not be negative")
        self.cap = cap
        self.spent = spent
        self.reserved = 0.0
        self._lock = threading.Lock()

    @property
    def remaining(self) -> float:
        return self.cap - self.spent - self.reserved

    def reserve(self, amount: float) -> Reservation:
        """Reserve ``amount``; :class:`BudgetExceededError` when it does not fit."""
        with self._lock:
            if amount > self.remaining + 1e-12:
                raise BudgetExceededError(
                    f"budget reached: ${self.spent:.4f} spent and ${self.reserved:.4f} reserved "
                    f"of ${self.cap:.4f}; the next request may cost up to ${amount:.4f}",
                    hint="raise --max-cost to go on (a --resume continues where it stopped)",
                )
            self.reserved += amount
            return Reservation(amount)

    def charge(self, cost: float) -> None:
        """Count ``cost`` as spent (an answer of a batch whose reservation is held apart)."""
        with self._lock:
            self.spent += cost

    def commit(self, amount: float) -> Reservation:
        """Reserve ``amount`` even past the cap: spend already committed (a batch submitted by
        an earlier session counts against the cap whatever it holds)."""
        with self._lock:
            self.reserved += amount
            return Reservation(amount)

    def settle(self, reservation: Reservation, cost: float) -> None:
        """Replace the reservation by what the answer actually cost."""
        with self._lock:
            if reservation.open:
                reservation.open = False
                self.reserved = max(0.0, self.reserved - reservation.amount)
            self.spent += cost

    def release(self, reservation: Reservation) -> None:
        """Give back a reservation (the attempt failed and cost nothing)."""
        with self._lock:
            if reservation.open:
                reservation.open = False
                self.reserved = max(0.0, self.reserved - reservation.amount)

    def __repr__(self) -> str:
        return f"Budget(cap={self.cap}, spent={self.spent}, reserved={self.reserved})"
