"""Exact parameters, multiply-accumulates and peak activation memory from the IR, for whole batches.

Peak activation memory follows tensor liveness over the execution order: a tensor is live from the op
that writes it through its last reader (network outputs to the end, the input until its last reader);
the peak is the largest total of live tensors at any step, at batch 1, with no in-place reuse.  It is the
lower bound a memory planner without in-place ops meets or exceeds.

Example
-------
>>> from zeroshot.spaces import get_space
>>> space = get_space("nb201")
>>> out = analytic_counts(space.irs(space.sample_distinct_codes(4, __import__("numpy").random.default_rng(0))))
>>> sorted(out)
['macs', 'params', 'peak_activation_bytes']
>>> model_bytes(out["params"], "int8").tolist() == out["params"].tolist()
True
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from zeroshot.errors import ParameterError
from zeroshot.spaces.ir import Arch, OpTable, to_table

from ._counts import counts as _counts_kernel

__all__ = ["BYTES_PER_ELEMENT", "analytic_counts", "bytes_per_element", "model_bytes", "table_counts"]

BYTES_PER_ELEMENT = {"fp32": 4, "fp16": 2, "int8": 1}


def bytes_per_element(precision: str) -> int:
    """Bytes of one element at ``precision`` (fp32, fp16 or int8); :class:`~zeroshot.errors.ParameterError`
    for another."""
    if precision not in BYTES_PER_ELEMENT:
        raise ParameterError("precision", f"one of {', '.join(BYTES_PER_ELEMENT)}", precision)
    return BYTES_PER_ELEMENT[precision]


def table_counts(table: OpTable, precision: str = "fp32") -> dict[str, np.ndarray]:
    """Counts of every architecture in an :class:`~zeroshot.spaces.ir.OpTable` (int64 arrays)."""
    nbytes = bytes_per_element(precision)
    n = len(table)
    params = np.empty(n, np.int64)
    macs = np.empty(n, np.int64)
    peak = np.empty(n, np.int64)
    longest = int(np.diff(table.ptr).max(initial=0))
    scratch = np.empty(longest + 1, np.int64)
    c = table.cols
    _counts_kernel(table.ptr, c["kind"], c["c_in"], c["c_out"], c["h_in"], c["w_in"], c["h_out"],
                   c["w_out"], c["k"], c["kw"], c["groups"], c["flag"], c["last_use"], table.in_size, table.in_last,
                   params, macs, peak, scratch)
    return {"params": params, "macs": macs, "peak_activation_bytes": peak * nbytes}


def analytic_counts(archs: Sequence[Arch], precision: str = "fp32") -> dict[str, np.ndarray]:
    """Counts of a batch of architectures: ``params``, ``macs``, ``peak_activation_bytes``."""
    return table_counts(to_table(archs), precision)


def model_bytes(params: np.ndarray, precision: str = "fp32") -> np.ndarray:
    """Size of the weights at a precision (fp32 / fp16 / int8)."""
    return np.asarray(params, dtype=np.int64) * bytes_per_element(precision)
