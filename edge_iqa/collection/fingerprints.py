"""A compact set of paths (8 bytes each), so that deduplicating and resuming a list of ten million
photos does not hold ten million Python strings in the driver.

A path is kept as the first 8 bytes of its BLAKE2b digest. Two different paths share a
fingerprint with probability about n^2 / 2^65 (3e-6 for 10 million paths); the cost of such a
collision is one photo treated as already seen.
"""

from __future__ import annotations

import hashlib

import numpy as np

#: Fingerprints are merged into the sorted array once this many are pending in the Python set.
_MERGE_AT = 1 << 16


def fingerprint(path: str) -> int:
    return int.from_bytes(hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=8).digest(), "little")


class FingerprintSet:
    """Membership of paths by fingerprint: a sorted uint64 array plus a small set of recent ones."""

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype=np.uint64)
        self._recent: set[int] = set()

    def add(self, path: str) -> bool:
        """Add ``path``; True when it was not in the set before."""
        key = fingerprint(path)
        if key in self._recent or self._in_sorted(key):
            return False
        self._recent.add(key)
        if len(self._recent) >= _MERGE_AT:
            self._merge()
        return True

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str):
            return False
        key = fingerprint(path)
        return key in self._recent or self._in_sorted(key)

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def _in_sorted(self, key: int) -> bool:
        if not len(self._sorted):
            return False
        value = np.uint64(key)
        index = int(np.searchsorted(self._sorted, value))
        return index < len(self._sorted) and self._sorted[index] == value

    def _merge(self) -> None:
        recent = np.fromiter(self._recent, dtype=np.uint64, count=len(self._recent))
        self._sorted = np.union1d(self._sorted, recent)
        self._recent.clear()
