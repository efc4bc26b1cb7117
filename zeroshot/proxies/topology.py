"""Topology-only proxies (no torch): computed from the op table for a whole batch by ``zeroshot._topology``.

Definitions (``ops on a path``: ops lying on some input->output path; ZERO ops cut paths):

* ``params`` / ``macs``: all parameters / multiply-accumulates (the "FLOPs" of NAS papers).
* ``live_params`` / ``live_macs``: the same counted over ops on an input->output path only (a conv whose
  output never reaches the output is not capacity: NB201's cut-off nodes).
* ``entropy``: DeepMAD / MAE-DET expressivity, ``log E[y^2]`` of the output at initialisation with N(0, 1)
  weights, BN removed and unit-variance input, propagated through the DAG: a conv multiplies the second
  moment by ``c_in / groups * k^2``, a linear by ``c_in``, ReLU-like activations by 1/2 (sigmoid by
  1/16, its slope at 0 squared), a k x k average pool by ``1 / k^2``; adds sum the moments of
  their branches (taken independent), a mul multiplies them, a concat averages them over channels.  On
  a plain chain this is ``sum_i log(c_i k_i^2) - L log 2``, MAE-DET's entropy.
* ``paths``: number of input->output paths; ``depth`` / ``shortest``: most / fewest conv and linear ops
  on one such path; ``merges``: adds / muls / concats joining >= 2 live branches (skip structure);
  ``convs``: convolutions on a path.

NaN / inf rule: a network whose output no input path reaches (for example every NB201 cell edge into the
last node is ``none``) gets ``paths = 0`` and ``-inf`` for ``entropy``, ``depth`` and ``shortest``,
so it ranks last in every higher-is-better order.

Over a chain of segments (:func:`segment_metric`, how the funnel scores millions of candidates): paths
multiply, the live counts, ``merges`` and ``convs`` add up unless one segment has no path (then the
network has none: 0), everything else adds up.

Example
-------
>>> from zeroshot.spaces import get_space, to_table
>>> space = get_space("nb201")
>>> cell = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
>>> f = topology_features(to_table([space.to_ir(cell)]))      # the 3x3 conv into node 3 reads zeros
>>> int(f["paths"][0]), int(f["depth"][0]), int(f["shortest"][0]), int(f["live_params"][0])
(131072, 36, 4, 344346)
"""
from __future__ import annotations

import numpy as np

from zeroshot.estimator.counts import table_counts
from zeroshot.spaces.ir import ZERO, OpTable

from .._topology import N_FEATURES, topology as _topology_kernel
from . import Proxy, register_proxy

__all__ = ["GRAPH_FEATURES", "segment_metric", "topology_features"]

GRAPH_FEATURES = ("entropy", "paths", "depth", "shortest", "merges", "convs")   # kernel column order
assert len(GRAPH_FEATURES) == N_FEATURES


def topology_features(table: OpTable) -> dict[str, np.ndarray]:
    """Every topology feature of every architecture of ``table`` (float64 arrays, one value each)."""
    if table.edges is None or len(table.edge_ptr) != len(table.cols["kind"]) + 1:
        raise ValueError("the op table has no input edges; build it with zeroshot.spaces.to_table(archs)")
    n = len(table)
    longest = int(np.diff(table.ptr).max(initial=0)) + 1
    out = np.empty((n, N_FEATURES), np.float64)
    live = np.empty(len(table.cols["kind"]), np.uint8)
    scratch = [np.empty(longest, np.float64) for _ in range(4)]
    c = table.cols
    _topology_kernel(table.ptr, c["kind"], c["c_in"], c["c_out"], c["k"], c["kw"], c["stride"], c["groups"],
                     c["act"], c["last_use"], table.in_last, table.edge_ptr, table.edges, out, live, *scratch,
                     np.empty(longest, np.uint8))
    feats = {name: out[:, j] for j, name in enumerate(GRAPH_FEATURES)}
    counts = table_counts(table)
    feats["params"] = counts["params"].astype(np.float64)
    feats["macs"] = counts["macs"].astype(np.float64)
    # live counts: the counts kernel on the same table with the ops off every path turned into ZERO
    dead = OpTable(table.ptr, {**c, "kind": np.where(live.view(bool), c["kind"], ZERO)}, table.in_size,
                   table.in_last, table.edge_ptr, table.edges)
    live_counts = table_counts(dead)
    feats["live_params"] = live_counts["params"].astype(np.float64)
    feats["live_macs"] = live_counts["macs"].astype(np.float64)
    return feats


def segment_metric(proxy: Proxy) -> tuple:
    """Topology proxy ``proxy`` as a segment metric ``(fn, reduce)`` of
    :class:`~zeroshot.estimator.segmented.SegmentedEvaluator`, exact over a chain of segments: a ``product``
    proxy as the sum of its logarithms (its value on the chain is then its logarithm, in the same order), a
    ``live_sum`` one as NaN on a segment without an input->output path (the evaluator's 0 for the chain).

    >>> from zeroshot.estimator.segmented import SegmentedEvaluator
    >>> from zeroshot.proxies import get_proxy
    >>> from zeroshot.spaces import get_space, to_table
    >>> space = get_space("mbv2")
    >>> codes = space.sample_codes(50, np.random.default_rng(0))
    >>> chain = SegmentedEvaluator(space, {"paths": segment_metric(get_proxy("paths"))}).evaluate(codes)["paths"]
    >>> bool(np.allclose(np.exp(chain), get_proxy("paths").fn(to_table(space.irs(codes)))))
    True
    """
    fn = proxy.fn
    if proxy.chain == "product":
        def log_fn(table: OpTable) -> np.ndarray:
            with np.errstate(divide="ignore"):
                return np.log(np.asarray(fn(table), dtype=np.float64))
        return log_fn, "sum"
    if proxy.chain == "live_sum":
        def live_fn(table: OpTable) -> np.ndarray:
            values = np.asarray(fn(table), dtype=np.float64)
            return np.where(topology_features(table)["paths"] > 0, values, np.nan)
        return live_fn, "live_sum"
    return (lambda table: np.asarray(fn(table), dtype=np.float64)), "sum"


_DESCRIPTIONS = {      # name: (higher is better, over a chain of segments, description)
    "params": (True, "sum", "number of parameters"),
    "macs": (True, "sum", "multiply-accumulates (the FLOPs of NAS papers)"),
    "live_params": (True, "live_sum", "parameters of ops on an input->output path"),
    "live_macs": (True, "live_sum", "multiply-accumulates of ops on an input->output path"),
    "entropy": (True, "sum", "DeepMAD/MAE-DET entropy: log output second moment at N(0,1) init, BN removed"),
    "paths": (True, "product", "number of input->output paths through the op graph"),
    "depth": (True, "sum", "most conv/linear ops on an input->output path"),
    "shortest": (True, "sum", "fewest conv/linear ops on an input->output path"),
    "merges": (True, "live_sum", "adds/muls/concats joining >= 2 live branches"),
    "convs": (True, "live_sum", "convolutions on an input->output path"),
}


def _register(name: str, higher_is_better: bool, chain: str, description: str) -> None:
    def proxy(table: OpTable) -> np.ndarray:
        return topology_features(table)[name]

    proxy.__name__ = proxy.__qualname__ = name
    register_proxy(name, needs="nothing", higher_is_better=higher_is_better, kind="topology",
                   description=description, chain=chain)(proxy)


for _name, (_higher, _chain, _description) in _DESCRIPTIONS.items():
    _register(_name, _higher, _chain, _description)
