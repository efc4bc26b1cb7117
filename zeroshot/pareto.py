"""The Pareto front of candidates scored higher-is-better against a lower-is-better cost (latency).

A point is on the front when it scores strictly more than every point at least as cheap: walking the points
by increasing cost (ties: higher score first), keep each that beats the best score seen so far.  NaN scores
are never on it.  :func:`pareto_front` works on arrays; :func:`pareto_stream` on rows already sorted that
way (a database cursor), in constant memory; :func:`front_candidates` keeps the points of one block of a
larger set that may lie on its front.

Example
-------
>>> import numpy as np
>>> score = np.array([1.0, 2.0, 0.5, 3.0, 2.5])
>>> latency = np.array([1.0, 2.0, 0.5, 4.0, 4.5])
>>> pareto_front(score, latency).tolist()
[2, 0, 1, 3]
>>> list(pareto_stream([("c", 0.5), ("a", 1.0), ("b", 2.0), ("d", 3.0), ("e", 2.5)]))
['c', 'a', 'b', 'd']
"""
from __future__ import annotations

from typing import Hashable, Iterable, Iterator

import numpy as np

__all__ = ["front_candidates", "pareto_front", "pareto_stream"]


def pareto_front(score, cost) -> np.ndarray:
    """Indices (int64) of the points not dominated in (higher ``score``, lower ``cost``), by increasing
    cost: those scoring strictly more than every point at least as cheap (NaN scores never)."""
    score = np.asarray(score, dtype=np.float64)
    order = np.lexsort((-score, np.asarray(cost)))
    s = score[order]
    best_before = np.concatenate([[-np.inf], np.maximum.accumulate(np.where(np.isnan(s), -np.inf, s))[:-1]])
    return order[s > best_before].astype(np.int64)


def pareto_stream(rows: Iterable[tuple[Hashable, float | None]]) -> Iterator[Hashable]:
    """Keys of the front from ``(key, score)`` rows that come by increasing cost, ties by decreasing
    score (the order :func:`pareto_front` walks); a missing (None) or NaN score is never on it."""
    best = -np.inf
    for key, score in rows:
        if score is not None and score > best:
            best = score
            yield key


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
