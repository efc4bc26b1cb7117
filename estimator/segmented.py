"""Batch metrics of millions of architectures from cached per-segment metrics.

A space that splits its architectures into a chain of segments (:meth:`zeroshot.spaces.SearchSpace.segment_keys`)
has far fewer distinct segments than architectures.  :class:`SegmentedEvaluator` lowers each distinct
segment once, computes every metric on it (any function of an :class:`~zeroshot.spaces.ir.OpTable`), caches it, and
combines segments with numpy gathers: ``sum`` for additive metrics (params, MACs, latency, log path
counts), ``max`` for peaks (exact for a chain, where one tensor passes between segments), ``live_sum`` for
sums over the ops on an input->output path (a segment whose value is NaN has none, so the chain has none
and the sum is 0).  Spaces without a segment decomposition are lowered whole (slower, same numbers).

Example
-------
>>> import numpy as np
>>> from zeroshot.spaces import get_space
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

from zeroshot.spaces import SearchSpace, to_table

from . import _segments
from .counts import table_counts
from .kernel_table import FUSION_FOLLOWERS, FUSION_HEADS, KERNEL_TYPES, decompose

__all__ = ["REDUCTIONS", "LatencyMetric", "Metric", "SegmentedEvaluator", "count_metrics", "latency_metric",
           "whole_values"]

Metric = tuple[Callable, str]          # (fn(OpTable) -> float/int array, "sum" | "max" | "live_sum")
REDUCTIONS = ("sum", "max", "live_sum")


def count_metrics(precision: str = "fp32") -> dict[str, Metric]:
    """params, macs and peak_activation_bytes as segment metrics."""
    def counts(name):
        return lambda table: table_counts(table, precision)[name]
    return {"params": (counts("params"), "sum"), "macs": (counts("macs"), "sum"),
            "peak_activation_bytes": (counts("peak_activation_bytes"), "max")}


class LatencyMetric:
    """A device's latency (ms) as a segment metric, with fusion across segment boundaries.

    Summing segments alone would miss a fusion the device makes across a boundary (a cell's output add
    fusing the next cell's sole ReLU, say).  So each segment also records its *entry kernel* (the kernel
    of an act / bn that is the only reader of its input), that kernel's latency, and the head kind of its
    *exit kernel*; where the device fuses ``exit + entry`` of consecutive segments, the entry kernel's
    latency is taken off (fused ops cost nothing beyond their kernel's head, as in the ``npu`` model).
    """

    reduce = "sum"

    def __init__(self, device):
        self.device = device

    def segment_values(self, archs, table) -> dict[str, np.ndarray]:
        kt = decompose(table, self.device.fusion)
        per_kernel = self.device.kernel_latency_ms(kt)
        lat = kt.sum_per_arch(per_kernel)
        entry = np.zeros(len(archs), np.int64)          # 0 none, else index+1 into _FOLLOWERS
        entry_ms = np.zeros(len(archs))
        exit_head = np.full(len(archs), -1, np.int64)   # index into _HEAD_NAMES, -1 none
        for a, arch in enumerate(archs):
            readers = [i for i, op in enumerate(arch.ops) if 0 in op.inputs]
            # the input's sole reader (an input that is also the output has the next segment as reader too)
            if len(readers) == 1 and arch.ops[readers[0]].kind in _FOLLOWERS and 0 not in arch.outputs:
                entry[a] = _FOLLOWERS.index(arch.ops[readers[0]].kind) + 1
                entry_ms[a] = per_kernel[kt.op_kernel[table.ptr[a] + readers[0]]]
            out = arch.outputs[0] - 1
            if out < 0 and not readers:
                exit_head[a] = -2             # a pass-through: fusion reaches across it
            elif out >= 0 and not any(out + 1 in op.inputs for op in arch.ops):   # read inside: no fusion
                head_type = KERNEL_TYPES[kt.cols["type"][kt.op_kernel[table.ptr[a] + out]]]
                exit_head[a] = _HEAD_NAMES.index(_HEAD_OF.get(head_type, "none"))
        return {"": lat, "entry": entry, "entry_ms": entry_ms, "exit": exit_head}

    def fusable(self) -> np.ndarray:
        """fused[exit head kind, entry kind] under the device's fusion rules."""
        table = np.zeros((len(_HEAD_NAMES), len(_FOLLOWERS) + 1), np.uint8)
        for rule in self.device.fusion:
            head, follower = rule.split("+")
            if head in _HEAD_NAMES and follower in _FOLLOWER_NAMES:
                table[_HEAD_NAMES.index(head), _FOLLOWER_NAMES.index(follower) + 1] = 1
        return table


_FOLLOWER_NAMES = tuple(FUSION_FOLLOWERS)
_FOLLOWERS = tuple(FUSION_FOLLOWERS.values())
_HEAD_NAMES = (*FUSION_HEADS, "none")
_HEAD_OF = {"dwconv": "conv", "gconv": "conv", **{head: head for head in FUSION_HEADS}}   # kernel type -> head


def latency_metric(device) -> LatencyMetric:
    """A device's latency (ms) as a segment metric."""
    return LatencyMetric(device)


class SegmentedEvaluator:
    """Evaluate ``metrics`` for batches of code rows of ``space``, caching per-segment values.

    The cache is a key array with a hash index and a float64 matrix of values (one column per metric, four
    per latency metric); the Cython kernels of ``zeroshot.estimator._segments`` look keys up and reduce each row.
    Integer metrics come back as exact int64 (float64 holds integers up to 2**53 exactly)."""

    def __init__(self, space: SearchSpace, metrics: dict[str, Metric]):
        for name, m in metrics.items():
            if not isinstance(m, LatencyMetric) and m[1] not in REDUCTIONS:
                raise ValueError(f"metric {name}: reduce must be one of {', '.join(REDUCTIONS)}, got {m[1]!r}")
        self.space = space
        self.metrics = dict(metrics)
        self._keys = np.empty(0, np.int64)
        self._table, self._shift = np.full(2, -1, np.int64), 63          # hash index of _keys
        self._columns: list[tuple[str, str]] = []          # (metric, part) of each value column
        kinds = []
        for name, m in self.metrics.items():
            if isinstance(m, LatencyMetric):
                self._columns += [(name, p) for p in ("", "entry", "entry_ms", "exit")]
                kinds += [_KINDS[k] for k in ("lat", "entry", "entry_ms", "exit")]
            else:
                self._columns.append((name, ""))
                kinds.append(_KINDS[m[1]])
        self._kinds = np.array(kinds, np.int64)
        self._fusable = np.ascontiguousarray(
            [m.fusable() for m in self.metrics.values() if isinstance(m, LatencyMetric)] or
            np.zeros((1, 1, 1), np.uint8), dtype=np.uint8)
        self._values = np.empty((0, len(kinds)))
        self._integer: dict[str, bool] = {}
        try:
            space.segment_keys(space.sample_codes(1, np.random.default_rng(0)))
            self.segmented = not any(m.device.whole_graph for m in metrics.values() if isinstance(m, LatencyMetric))
        except NotImplementedError:
            self.segmented = False

    def evaluate(self, codes: np.ndarray) -> dict[str, np.ndarray]:
        codes = np.asarray(codes, dtype=np.int64).reshape(-1, self.space.code_length)
        if not self.segmented:
            table = to_table(self.space.irs(codes))
            return {name: (m.device.latency_ms(table) if isinstance(m, LatencyMetric) else whole_values(m, table))
                    for name, m in self.metrics.items()}
        keys = np.ascontiguousarray(self.space.segment_keys(codes))
        pos = np.empty(keys.shape, np.int64)
        if _segments.lookup(keys, self._keys, self._table, self._shift, pos):
            self._lower(np.unique(keys[pos == -2]))
            _segments.lookup(keys, self._keys, self._table, self._shift, pos)
        out = np.zeros((len(codes), len(self._kinds)))
        _segments.combine(pos, self._values, self._kinds, self._fusable, out)
        result = {}
        for c, (name, part) in enumerate(self._columns):
            if part == "":
                result[name] = out[:, c].astype(np.int64) if self._integer[name] else out[:, c]
                if isinstance(self.metrics[name], LatencyMetric):       # once per architecture
                    result[name] = result[name] + self.metrics[name].device.model_overhead_ms
        return result

    def _lower(self, new: np.ndarray) -> None:
        archs = [self.space.segment_ir(int(k)) for k in new]
        table = to_table(archs)
        parts = {}
        for name, m in self.metrics.items():
            got = m.segment_values(archs, table) if isinstance(m, LatencyMetric) else {"": np.asarray(m[0](table))}
            self._integer.setdefault(name, got[""].dtype.kind in "iu")
            parts.update({(name, p): v for p, v in got.items()})
        values = np.column_stack([np.asarray(parts[col], dtype=np.float64) for col in self._columns])
        allkeys = np.concatenate([self._keys, new])
        self._keys = np.ascontiguousarray(allkeys)
        self._values = np.ascontiguousarray(np.concatenate([self._values, values]))
        bits = max(4, (2 * len(allkeys)).bit_length())               # load factor below a half
        self._table, self._shift = np.full(1 << bits, -1, np.int64), 64 - bits
        _segments.build_index(self._keys, self._table, self._shift)


def whole_values(metric: Metric, table) -> np.ndarray:
    """``metric`` of the whole networks of ``table``, each one segment (a ``live_sum`` NaN, no path, is 0
    as over a chain): the value the segments of a chain combine to."""
    values = np.asarray(metric[0](table))
    return np.where(np.isnan(values), 0.0, values) if metric[1] == "live_sum" else values


_KINDS = _segments.COLUMN_KINDS         # column kinds of ext/_segments.pyx, by name
