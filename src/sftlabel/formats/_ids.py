"""The ids a reader has handed out, in little memory.

A run over 10^7 conversations must remember every id to keep them unique; a Python dict costs
about 100 bytes an entry. This table keeps a 64-bit hash of each id and one 32-bit value (the
file that handed it out and the conversation's number of replies) in two arrays with open
addressing, filled up to 3/4: 12 bytes a slot, 16 to 24 bytes an id.
"""

from __future__ import annotations

from array import array

_MASK64 = (1 << 64) - 1
_REPLY_BITS = 10
_REPLY_CAP = (1 << _REPLY_BITS) - 1
_FILE_CAP = (1 << (32 - _REPLY_BITS)) - 1


class IdTable:
    """``id -> (file number, replies)`` for the ids handed out (hashes only)."""

    __slots__ = ("_keys", "_many", "_mask", "_used", "_values")

    def __init__(self, capacity: int = 1024) -> None:
        self._keys = array("Q", bytes(8 * capacity))
        self._values = array("I", bytes(4 * capacity))
        self._mask = capacity - 1
        self._used = 0
        # (file numbers and reply counts too large for the 32-bit value: rare)
        self._many: dict[int, tuple[int, int]] = {}

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
                if value == 0xFFFFFFFF:
                    return self._many[key]
                return value >> _REPLY_BITS, value & _REPLY_CAP
            if not found:
                return None
            slot = (slot + 1) & mask

    def put(self, text: str, file_number: int, replies: int) -> None:
        """Remember ``text`` (handed out by file ``file_number``, ``replies`` replies)."""
        if 4 * (self._used + 1) > 3 * len(self._keys):
            self._grow()
        key = self._hash(text)
        if replies < _REPLY_CAP and file_number < _FILE_CAP:
            value = (file_number << _REPLY_BITS) | replies
        else:
            value = 0xFFFFFFFF
            self._many[key] = (file_number, replies)
        self._insert(key, value)

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
        self._values = array("I", bytes(4 * capacity))
        self._mask = capacity - 1
        self._used = 0
        for key, value in zip(old_keys, old_values, strict=True):
            if key:
                self._insert(key, value)
