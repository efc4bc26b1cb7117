"""Columnar blocks of candidates for the results store: compact codes, exact de-duplication, and the best
k of a block chosen on its arrays before any encoding is formatted (Pareto candidates: :mod:`zeroshot.pareto`).

A screen's stages 1-2 write whole chunks: one block per chunk holds its code vectors and one array per
metric, instead of one SQL row per candidate.  :class:`PackedCodes` keeps each code column as unsigned
steps from its minimum (``(value - offset) / scale``, the narrowest type that holds them: one byte a value
for mbv2, whose widths are multiples of 8) with a 64-bit hash of each row.  A candidate is identified by its
code vector; :class:`CodeIndex` finds repeats across blocks by hash and confirms every hash match on the
codes themselves, so a collision never drops a candidate.

Example
-------
>>> codes = np.array([[1, 1600], [3, 160], [1, 1600]])
>>> packed = pack_codes(codes)
>>> packed.values.dtype.name, packed.scale.tolist(), np.array_equal(packed.unpack(), codes)
('uint8', [1, 1440], True)
>>> index = CodeIndex()
>>> new = index.new_rows(packed, lambda chunk: None, np.argsort(packed.hashes))
>>> new.tolist()                                # a repeat inside the chunk: the first one is kept
[True, True, False]
>>> index.insert(packed.hashes[new], 0)
>>> more = pack_codes(np.array([[3, 160], [5, 6]]))
>>> index.new_rows(more, lambda chunk: packed.take(new), np.argsort(more.hashes)).tolist()
[False, True]
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

__all__ = ["CodeIndex", "PackedCodes", "code_hashes", "pack_codes", "top_with_ties"]

_WEIGHTS = np.random.default_rng(0x5EED).integers(0, 2 ** 64, 4096, dtype=np.uint64) | np.uint64(1)
_FINAL = np.uint64(0xBF58476D1CE4E5B9)


class PackedCodes(NamedTuple):
    """Code vectors as ``values * scale + offset`` (per column) with each row's :func:`code_hashes`."""

    values: np.ndarray          # (n, width), the narrowest unsigned type
    offset: np.ndarray          # (width,) int64
    scale: np.ndarray           # (width,) int64, >= 1
    hashes: np.ndarray          # (n,) uint64

    def __len__(self) -> int:
        return len(self.values)

    def unpack(self, rows=slice(None)) -> np.ndarray:
        """The int64 codes of ``rows`` (all by default)."""
        return self.values[rows].astype(np.int64) * self.scale + self.offset

    def take(self, rows) -> "PackedCodes":
        """The packed codes of ``rows`` (an index or a mask)."""
        return PackedCodes(self.values[rows], self.offset, self.scale, self.hashes[rows])


def pack_codes(codes: np.ndarray) -> PackedCodes:
    """``codes`` (rows of integers) packed column by column, with their hashes."""
    codes = np.asarray(codes).reshape(len(codes), -1)
    if not codes.size:
        zeros = np.zeros(codes.shape[1], np.int64)
        return PackedCodes(codes.astype(np.uint8), zeros, zeros + 1, code_hashes(codes))
    lo, hi = int(codes.min()), int(codes.max())
    small = -2 ** 14 <= lo and hi < 2 ** 14                # steps fit int16 too: work in 16 bits
    codes = codes.astype(np.int16 if small else np.int64, copy=False)
    offset = codes.min(axis=0)
    steps = codes - offset
    span = steps.max(axis=0).astype(np.int64)
    scale = np.ones(len(span), np.int64)
    wide = np.flatnonzero(span > 255)                 # only there a common step can narrow the type
    if len(wide):
        scale[wide] = np.maximum(np.gcd.reduce(steps[:, wide], axis=0), 1)
        steps[:, wide] //= scale[wide].astype(steps.dtype)
    top = int((span // scale).max())
    dtype = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64) if top <= np.iinfo(t).max)
    return PackedCodes(steps.astype(dtype), offset.astype(np.int64), scale, code_hashes(codes))


def code_hashes(codes: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of ``codes``: a function of the row's values alone.  Values are taken
    modulo 2^16, so rows differing by multiples of 65536 collide; callers confirm matches on the codes."""
    codes = np.asarray(codes)
    n, width = codes.shape
    short = np.ascontiguousarray(codes, dtype=np.int16)        # wraps modulo 2^16: a hash, not an encoding
    if width % 4:
        short = np.concatenate([short, np.zeros((n, 4 - width % 4), np.int16)], axis=1)
    words = short.view(np.uint64)                              # four values a word
    weights = np.resize(_WEIGHTS, words.shape[1])
    h = (words * weights).sum(axis=1, dtype=np.uint64) ^ np.uint64(width)
    h ^= h >> np.uint64(31)
    h *= _FINAL
    return h ^ (h >> np.uint64(29))


class CodeIndex:
    """The candidates of a run's blocks, by code hash: hash and (chunk, position) sorted by hash, 16 bytes
    per candidate (the codes stay in the store; a hash match is confirmed on them)."""

    def __init__(self):
        self.hashes = np.empty(0, np.uint64)
        self.places = np.empty(0, np.int64)              # chunk << 32 | position

    def __len__(self) -> int:
        return len(self.hashes)

    def insert(self, hashes: np.ndarray, chunk: int, order: np.ndarray | None = None) -> None:
        """Add the candidates of block ``chunk`` (``hashes`` by position; ``order``: their argsort, if known)."""
        order = np.argsort(hashes) if order is None else order
        at = np.searchsorted(self.hashes, hashes[order])
        self.hashes = np.insert(self.hashes, at, hashes[order])
        self.places = np.insert(self.places, at, (chunk << 32) | order)

    def find(self, codes: PackedCodes, block_codes: Callable[[int], PackedCodes], order: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """``(chunk, position)`` of each row of ``codes`` in the index (-1, -1 where absent);
        ``block_codes(chunk)`` gives a block's codes to confirm hash matches; ``order``: the hashes' argsort,
        if known."""
        chunk, position = np.full(len(codes), -1, np.int64), np.full(len(codes), -1, np.int64)
        if not len(self):
            return chunk, position
        order = np.argsort(codes.hashes) if order is None else order     # sorted keys: searchsorted walks on
        lo = np.empty(len(codes), np.int64)
        lo[order] = np.searchsorted(self.hashes, codes.hashes[order])
        rows = np.flatnonzero(self.hashes[np.minimum(lo, len(self) - 1)] == codes.hashes)
        if not len(rows):
            return chunk, position
        lo = lo[rows]
        counts = np.searchsorted(self.hashes, codes.hashes[rows], "right") - lo
        pairs = np.repeat(rows, counts)                                 # (row, index entry) to confirm
        entries = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        chunks, positions = self.places[entries] >> 32, self.places[entries] & 0xFFFFFFFF
        for c in np.unique(chunks):
            sel = chunks == c
            r, p = pairs[sel], positions[sel]
            same = (block_codes(int(c)).unpack(p) == codes.unpack(r)).all(axis=1)
            first = same & (chunk[r] < 0)
            chunk[r[first]], position[r[first]] = c, p[first]
        return chunk, position

    def new_rows(self, codes: PackedCodes, block_codes: Callable[[int], PackedCodes], order: np.ndarray
                 ) -> np.ndarray:
        """Mask of the rows of ``codes`` (``order``: the argsort of their hashes) that are neither in the
        index nor a repeat of an earlier row."""
        new = _first_occurrences(codes, order)
        if new.all():
            return self.find(codes, block_codes, order)[0] < 0
        new[new] = self.find(codes.take(new), block_codes)[0] < 0
        return new


def _first_occurrences(codes: PackedCodes, order: np.ndarray) -> np.ndarray:
    """Mask of the rows that no earlier row equals (exact, on the rows sharing a hash; ``order``: the
    argsort of the hashes)."""
    new = np.ones(len(codes), bool)
    tied = np.zeros(len(codes), bool)
    same = codes.hashes[order][1:] == codes.hashes[order][:-1]
    tied[order[1:][same]] = tied[order[:-1][same]] = True
    rows = np.flatnonzero(tied)
    if len(rows):
        _, first = np.unique(codes.values[rows], axis=0, return_index=True)
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
