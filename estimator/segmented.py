"""Batch metrics of millions of architectures from cached per-segment metrics.

A space that splits its architectures into a chain of segments (:meth:`spaces.SearchSpace.segment_keys`)
has far fewer distinct segments than architectures.  :class:`SegmentedEvaluator` lowers each distinct
segment once, computes every metric on it (any function of an :class:`~spaces.ir.OpTable`), caches it, and
combines segments with numpy gathers: ``sum`` for additive metrics (params, MACs, latency, log path
counts), ``max`` for peaks (exact for a chain, where one tensor passes between segments).  Spaces without a
segment decomposition are lowered whole (slower, same numbers).

Example
-------
>>> import numpy as np
>>> from spaces import get_space
>>> space = get_space("nb201")
>>> ev = SegmentedEvaluator(space, count_metrics())
>>> codes = space.sample_distinct_codes(1000, np.random.default_rng(0))
>>> out = ev.evaluate(codes)
>>> bool((out["params"] == [a.params for a in space.irs(codes)]).all())
True
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from spaces import SearchSpace, to_table

from .counts import BYTES_PER_ELEMENT, table_counts

Metric = tuple[Callable, str]          # (fn(OpTable) -> float/int array, "sum" | "max")


def count_metrics(precision: str = "fp32") -> dict[str, Metric]:
    """params, macs and peak_activation_bytes as segment metrics."""
    def counts(name):
        return lambda table: table_counts(table, precision)[name]
    return {"params": (counts("params"), "sum"), "macs": (counts("macs"), "sum"),
            "peak_activation_bytes": (counts("peak_activation_bytes"), "max")}


def latency_metric(device) -> Metric:
    """A device's latency (ms) as a segment metric."""
    return (device.latency_ms, "sum")


class SegmentedEvaluator:
    """Evaluate ``metrics`` for batches of code rows of ``space``, caching per-segment values."""

    def __init__(self, space: SearchSpace, metrics: dict[str, Metric]):
        for name, (_, reduce) in metrics.items():
            if reduce not in ("sum", "max"):
                raise ValueError(f"metric {name}: reduce must be 'sum' or 'max', got {reduce!r}")
        self.space = space
        self.metrics = dict(metrics)
        self._keys = np.empty(0, np.int64)
        self._values = {name: np.empty(0) for name in metrics}
        try:
            space.segment_keys(space.sample_codes(1, np.random.default_rng(0)))
            self.segmented = True
        except NotImplementedError:
            self.segmented = False

    @property
    def n_cached(self) -> int:
        return len(self._keys)

    def evaluate(self, codes: np.ndarray) -> dict[str, np.ndarray]:
        codes = np.asarray(codes, dtype=np.int64).reshape(-1, self.space.code_length)
        if not self.segmented:
            return self._apply(to_table(self.space.irs(codes)))
        keys = self.space.segment_keys(codes)
        uniq, inv = np.unique(keys, return_inverse=True)
        self._lower(uniq[uniq >= 0])
        pos = np.searchsorted(self._keys, uniq)
        present = (keys >= 0)
        out = {}
        for name, (_, reduce) in self.metrics.items():
            seg = self._values[name][np.minimum(pos, len(self._keys) - 1)][inv.reshape(keys.shape)]
            if reduce == "sum":
                out[name] = np.where(present, seg, 0).sum(axis=1)
            else:
                out[name] = np.where(present, seg, np.iinfo(np.int64).min if seg.dtype.kind == "i"
                                     else -np.inf).max(axis=1)
        return out

    def _apply(self, table) -> dict[str, np.ndarray]:
        return {name: np.asarray(fn(table)) for name, (fn, _) in self.metrics.items()}

    def _lower(self, keys: np.ndarray) -> None:
        new = keys[~np.isin(keys, self._keys, assume_unique=True)]
        if not len(new):
            return
        values = self._apply(to_table([self.space.segment_ir(int(k)) for k in new]))
        allkeys = np.concatenate([self._keys, new])
        order = np.argsort(allkeys, kind="stable")
        self._keys = allkeys[order]
        for name in self.metrics:
            self._values[name] = np.concatenate([self._values[name], values[name]])[order]


def model_bytes(params: np.ndarray, precision: str = "fp32") -> np.ndarray:
    """Size of the weights at a precision (fp32 / fp16 / int8)."""
    try:
        return np.asarray(params, dtype=np.int64) * BYTES_PER_ELEMENT[precision]
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(BYTES_PER_ELEMENT)}") from None
