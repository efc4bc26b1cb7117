"""The one cache of proxy values: ``{key: {proxy: value}}`` for any hashable architecture key (an encoding,
a canonical encoding, code bytes), filled only for what is missing.

Search's pre-filter (:class:`zeroshot.prefilter.ProxyScorer`) and refinement (:func:`zeroshot.refine.score_values`)
keep their values here; a dict loaded from a file can back it, to reuse values across runs.

Example
-------
>>> import numpy as np
>>> cache = ProxyCache()
>>> calls = []
>>> def compute(rows):                      # values of the proxies for the rows (indices into keys) asked for
...     calls.append(rows)
...     return {"p": np.array([10.0 * i for i in rows])}
>>> cache.values(["a", "b", "a"], ["p"], compute)
{'p': array([ 0., 10.,  0.])}
>>> cache.values(["b", "c"], ["p"], compute)["p"], calls
(array([10., 10.]), [[0, 1], [1]])
"""
from __future__ import annotations

from typing import Callable, Hashable, Sequence

import numpy as np

__all__ = ["ProxyCache"]


class ProxyCache:
    """Proxy values by architecture key (``store``: an existing ``{key: {proxy: value}}`` dict to fill)."""

    def __init__(self, store: dict | None = None):
        self.store = {} if store is None else store

    def values(self, keys: Sequence[Hashable], names: Sequence[str],
               compute: Callable[[list[int]], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """``{proxy: values}`` of ``names`` for ``keys`` (one per row); ``compute(rows)`` is called once with
        the first row of every key that misses a value and returns their values, in that order."""
        missing = {}
        for i, key in enumerate(keys):
            if key not in missing and not all(n in self.store.get(key, {}) for n in names):
                missing[key] = i
        rows = sorted(missing.values())
        if rows:
            new = compute(rows)
            for j, i in enumerate(rows):
                self.store.setdefault(keys[i], {}).update({n: float(new[n][j]) for n in names})
        return {n: np.array([self.store[k][n] for k in keys], dtype=np.float64) for n in names}
