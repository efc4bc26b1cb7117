"""Columnar blocks of candidates for the results store: compact codes, exact de-duplication, and the
selections (best k, Pareto candidates) made on arrays before any encoding is formatted.

A screen's stages 1-2 write whole chunks: one block per chunk holds its code vectors (the narrowest
integer type that holds them) and one array per metric, instead of one SQL row per candidate.  A candidate
is identified by its code vector; :class:`CodeIndex` finds repeats across blocks through 64-bit hashes of
the codes and confirms every hash match on the codes themselves, so a collision never drops a candidate.

Example
-------
>>> codes = np.array([[1, 2], [3, 4], [1, 2]])
>>> pack_codes(codes).dtype.name
'int8'
>>> index = CodeIndex()
>>> new = index.new_rows(codes, code_hashes(codes), lambda chunk: None)
>>> new.tolist()                                # a repeat inside the chunk: the first one is kept
[True, True, False]
>>> index.insert(code_hashes(codes[new]), 0)
>>> index.new_rows(np.array([[3, 4], [5, 6]]), code_hashes(np.array([[3, 4], [5, 6]])),
...                lambda chunk: codes[new]).tolist()
[False, True]
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["CodeIndex", "code_hashes", "front_candidates", "pack_codes", "top_with_ties"]

_MIX = np.uint64(0x9E3779B97F4A7C15)
_FINAL = np.uint64(0xBF58476D1CE4E5B9)


def pack_codes(codes: np.ndarray) -> np.ndarray:
    """``codes`` (rows) in the narrowest signed integer type that holds every value."""
    codes = np.asarray(codes)
    if codes.size == 0:
        return codes.astype(np.int8)
    lo, hi = int(codes.min()), int(codes.max())
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return codes.astype(dtype, copy=False)
    return codes.astype(np.int64, copy=False)


def code_hashes(codes: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of ``codes``: a function of the row's values alone (not of its dtype or of
    the other rows).  Values are taken modulo 2^16, so rows differing by multiples of 65536 collide; callers
    confirm matches on the codes."""
    codes = np.asarray(codes)
    n, width = codes.shape
    words = -(-width // 4)
    short = np.zeros((n, 4 * words), np.int16)
    short[:, :width] = codes                      # wraps modulo 2^16: a hash, not an encoding
    h = np.full(n, np.uint64(width), np.uint64)
    for column in np.ascontiguousarray(short.view(np.uint64).T):
        h ^= column
        h *= _MIX
    h ^= h >> np.uint64(31)
    h *= _FINAL
    return h ^ (h >> np.uint64(29))


class CodeIndex:
    """The candidates of a run's blocks, by code hash: (hash, chunk, position) sorted by hash, 16 bytes
    per candidate (the codes stay in the store; a hash match is confirmed on them)."""

    def __init__(self):
        self.hashes = np.empty(0, np.uint64)
        self.chunks = np.empty(0, np.int64)
        self.positions = np.empty(0, np.int64)

    def __len__(self) -> int:
        return len(self.hashes)

    def insert(self, hashes: np.ndarray, chunk: int) -> None:
        """Add the candidates of block ``chunk`` (``hashes`` by position)."""
        order = np.argsort(hashes, kind="stable")
        at = np.searchsorted(self.hashes, hashes[order])
        self.hashes = np.insert(self.hashes, at, hashes[order])
        self.chunks = np.insert(self.chunks, at, chunk)
        self.positions = np.insert(self.positions, at, order)

    def find(self, codes: np.ndarray, hashes: np.ndarray, block_codes: Callable[[int], np.ndarray]
             ) -> tuple[np.ndarray, np.ndarray]:
        """``(chunk, position)`` of each row of ``codes`` in the index (-1, -1 where absent);
        ``block_codes(chunk)`` gives a block's codes to confirm hash matches."""
        codes = np.asarray(codes, np.int64)
        chunk, position = np.full(len(codes), -1, np.int64), np.full(len(codes), -1, np.int64)
        lo, hi = np.searchsorted(self.hashes, hashes, "left"), np.searchsorted(self.hashes, hashes, "right")
        rows = np.flatnonzero(hi > lo)
        if not len(rows):
            return chunk, position
        counts = (hi - lo)[rows]
        pairs = np.repeat(rows, counts)                                 # (row, index entry) to confirm
        entries = np.repeat(lo[rows] - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        for c in np.unique(self.chunks[entries]):
            sel = self.chunks[entries] == c
            r, p = pairs[sel], self.positions[entries[sel]]
            same = (np.asarray(block_codes(int(c)), np.int64)[p] == codes[r]).all(axis=1)
            first = same & (chunk[r] < 0)
            chunk[r[first]], position[r[first]] = c, p[first]
        return chunk, position

    def new_rows(self, codes: np.ndarray, hashes: np.ndarray, block_codes: Callable[[int], np.ndarray]
                 ) -> np.ndarray:
        """Mask of the rows of ``codes`` that are neither in the index nor a repeat of an earlier row."""
        new = _first_occurrences(np.asarray(codes, np.int64), hashes)
        if len(self):
            new[new] = self.find(codes[new], hashes[new], block_codes)[0] < 0
        return new


def _first_occurrences(codes: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Mask of the rows that no earlier row equals (exact, on the rows sharing a hash)."""
    new = np.ones(len(codes), bool)
    order = np.argsort(hashes, kind="stable")
    tied = np.zeros(len(codes), bool)
    same = hashes[order][1:] == hashes[order][:-1]
    tied[order[1:][same]] = tied[order[:-1][same]] = True
    rows = np.flatnonzero(tied)
    if len(rows):
        _, first = np.unique(codes[rows], axis=0, return_index=True)
        new[rows] = False
        new[rows[first]] = True
    return new


def top_with_ties(values: np.ndarray, k: int, descending: bool) -> np.ndarray:
    """Indices of the ``k`` best ``values`` and of every value tied with the k-th (NaN never), so that
    ties can still be broken by another key afterwards."""
    ok = np.flatnonzero(~np.isnan(values))
    if len(ok) <= k:
        return ok
    v = -values[ok] if descending else values[ok]
    kth = np.partition(v, k - 1)[k - 1]
    return ok[v <= kth]


def front_candidates(score: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Indices of the points that may lie on the Pareto front of (higher ``score``, lower ``cost``) of any
    set containing them (ties with another point kept: the final walk breaks them by another key): no
    point comes strictly before it (lower cost, or equal cost and higher score) with a score at least its
    own.  NaN never."""
    ok = np.flatnonzero(~(np.isnan(score) | np.isnan(cost)))
    if not len(ok):
        return ok
    order = ok[np.lexsort((-score[ok], cost[ok]))]
    s, c = score[order], cost[order]
    start = np.ones(len(order), bool)
    start[1:] = (s[1:] != s[:-1]) | (c[1:] != c[:-1])               # first of each group of equal points
    group_start = np.maximum.accumulate(np.where(start, np.arange(len(order)), 0))
    best_before = np.concatenate([[-np.inf], np.maximum.accumulate(s)])[group_start]
    return np.sort(order[s > best_before])
