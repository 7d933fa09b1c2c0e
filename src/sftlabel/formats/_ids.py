"""The ids a reader has handed out, in little memory.

A run over 10^7 conversations must remember every id to keep them unique; a Python dict costs
about 100 bytes an entry. This table keeps a 64-bit hash of each id and one 64-bit value (the
file that handed it out and the conversation's number of replies) in two arrays with open
addressing: 16 bytes a slot, at most 32 bytes an id.
"""

from __future__ import annotations

from array import array

_MASK64 = (1 << 64) - 1
_REPLY_BITS = 32


class IdTable:
    """``id -> (file number, replies)`` for the ids handed out (hashes only)."""

    __slots__ = ("_keys", "_mask", "_used", "_values")

    def __init__(self, capacity: int = 1024) -> None:
        self._keys = array("Q", bytes(8 * capacity))
        self._values = array("Q", bytes(8 * capacity))
        self._mask = capacity - 1
        self._used = 0

    def __len__(self) -> int:
        return self._used

    @staticmethod
    def _hash(text: str) -> int:
        return (hash(text) & _MASK64) or 1  # 0 marks an empty slot

    def get(self, text: str) -> tuple[int, int] | None:
        """``(file number, replies)`` of ``text``, or None when it was not handed out."""
        key = self._hash(text)
        keys, mask = self._keys, self._mask
        slot = key & mask
        while True:
            found = keys[slot]
            if found == key:
                value = self._values[slot]
                return value >> _REPLY_BITS, value & ((1 << _REPLY_BITS) - 1)
            if not found:
                return None
            slot = (slot + 1) & mask

    def put(self, text: str, file_number: int, replies: int) -> None:
        """Remember ``text`` (handed out by file ``file_number``, ``replies`` replies)."""
        if 2 * (self._used + 1) > len(self._keys):
            self._grow()
        value = (file_number << _REPLY_BITS) | min(replies, (1 << _REPLY_BITS) - 1)
        self._insert(self._hash(text), value)

    def _insert(self, key: int, value: int) -> None:
        keys, mask = self._keys, self._mask
        slot = key & mask
        while keys[slot] and keys[slot] != key:
            slot = (slot + 1) & mask
        if not keys[slot]:
            self._used += 1
        keys[slot] = key
        self._values[slot] = value

    def _grow(self) -> None:
        old_keys, old_values = self._keys, self._values
        capacity = 2 * len(old_keys)
        self._keys = array("Q", bytes(8 * capacity))
        self._values = array("Q", bytes(8 * capacity))
        self._mask = capacity - 1
        self._used = 0
        for key, value in zip(old_keys, old_values, strict=True):
            if key:
                self._insert(key, value)
