"""Kernel features of the calibrated latency model, and its parameters by feature name.

A calibrated device's latency is ``intercept + sum over kernels of theta . f(kernel)``
(:data:`FEATURE_VERSION` fixes the features ``f``): per kernel type and kernel size (1, 3, 5, 7+), the
kernel count, its op count before fusion, MACs and elements moved (input + output + weights),
each also spread over log2 knots of the output resolution and of the output channels (piecewise-linear
"tent" weights, so costs may vary smoothly with shape), and all of it twice: for every kernel as run
eagerly, and for the kernels left after constant folding and dead-op elimination
(:mod:`zeroshot.estimator.folding`), as graph compilers run them.  Files store parameter vectors sparsely,
by feature name (:func:`column_name`, e.g. ``live.dwconv.k5.macs.c64``).

Example
-------
>>> from zeroshot.spaces import get_space
>>> space = get_space("nb201")
>>> features = arch_features(space, space.sample(3, seed=0))
>>> features.shape == (3, N_COLS)
True
>>> column_index(column_name(1234)) == 1234
True
>>> float(predict_features(features, 0.5, np.zeros(N_COLS))[0])
0.5
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import sparse

from zeroshot.errors import DeviceError
from zeroshot.spaces.ir import Arch, OpTable, to_table

from .folding import live_kernels
from .kernel_table import DEFAULT_FUSION, KERNEL_TYPES, KernelTable, decompose

__all__ = ["CH_KNOTS", "FEATURE_VERSION", "K_BUCKETS", "N_COLS", "RES_KNOTS", "SCOPES", "VALUES", "WEIGHTS",
           "arch_features", "arch_table", "check_version", "column_index", "column_name", "dense_theta",
           "kernel_slots", "predict_features", "round_param", "sparse_theta", "table_features"]

FEATURE_VERSION = 1

SCOPES = ("all", "live")                     # every kernel / kernels left after folding
VALUES = ("n", "ops", "macs", "mem")         # kernel count, ops before fusion, MACs, elements moved
K_BUCKETS = 8                                # kernel size 0..6, 7 = 7 and larger
RES_KNOTS = tuple(2 ** j for j in range(0, 10))     # output height 1 .. 512
CH_KNOTS = tuple(2 ** j for j in range(2, 13))      # output channels 4 .. 4096
WEIGHTS = ("",) + tuple(f"h{v}" for v in RES_KNOTS) + tuple(f"c{v}" for v in CH_KNOTS)
N_COLS = len(SCOPES) * len(KERNEL_TYPES) * K_BUCKETS * len(VALUES) * len(WEIGHTS)


# ------------------------------------------------------------------------------------------ names
def column_name(col: int) -> str:
    """Readable name of feature column ``col``, e.g. ``live.dwconv.k5.macs.c64``."""
    rest, w = divmod(int(col), len(WEIGHTS))
    rest, v = divmod(rest, len(VALUES))
    rest, kb = divmod(rest, K_BUCKETS)
    scope, t = divmod(rest, len(KERNEL_TYPES))
    return ".".join([SCOPES[scope], KERNEL_TYPES[t], f"k{kb}", VALUES[v]] + ([WEIGHTS[w]] if w else []))


def column_index(name: str) -> int:
    """Inverse of :func:`column_name`; raises ``KeyError`` naming what is wrong."""
    parts = name.split(".")
    if len(parts) not in (4, 5) or not parts[2].startswith("k"):
        raise KeyError(f"feature {name!r} is not SCOPE.TYPE.kK.VALUE[.WEIGHT]")
    scope, typ, kb, val = parts[:4]
    w = parts[4] if len(parts) == 5 else ""
    for what, value, allowed in (("scope", scope, SCOPES), ("kernel type", typ, KERNEL_TYPES),
                                 ("value", val, VALUES), ("weight", w, WEIGHTS)):
        if value not in allowed:
            raise KeyError(f"feature {name!r}: unknown {what} {value!r}; choose from {', '.join(allowed)}")
    k = int(kb[1:]) if kb[1:].isdigit() else -1
    if not 0 <= k < K_BUCKETS:
        raise KeyError(f"feature {name!r}: kernel size bucket must be k0..k{K_BUCKETS - 1}")
    idx = (SCOPES.index(scope) * len(KERNEL_TYPES) + KERNEL_TYPES.index(typ)) * K_BUCKETS + k
    return (idx * len(VALUES) + VALUES.index(val)) * len(WEIGHTS) + WEIGHTS.index(w)


# ------------------------------------------------------------------------------------------ features
def _tent(x: np.ndarray, knots: Sequence[int]):
    """The two knots (indices) around ``log2 x`` and their piecewise-linear weights (clipped at the ends)."""
    pos = np.clip(np.log2(np.maximum(x, 1)), np.log2(knots[0]), np.log2(knots[-1])) - np.log2(knots[0])
    lo = np.minimum(np.floor(pos).astype(np.int64), len(knots) - 2)
    frac = pos - lo
    return (lo, 1.0 - frac), (lo + 1, frac)


def kernel_slots(kt: KernelTable, live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sparse features of every kernel: ``cols`` and ``vals`` of shape ``(n_kernels, slots)``; a
    kernel's feature vector is the sum of ``vals`` placed at ``cols`` (a column may repeat)."""
    c = kt.cols
    values = (np.ones(len(c["type"])), c["n_ops"].astype(float), c["macs"].astype(float),
              (c["in_elems"] + c["out_elems"] + c["weight_elems"]).astype(float))
    weightings = [(np.zeros(len(c["type"]), np.int64), 1.0)]
    offset = 1
    for x, knots in ((c["h_out"], RES_KNOTS), (c["c_out"], CH_KNOTS)):
        weightings += [(offset + i, w) for i, w in _tent(x, knots)]
        offset += len(knots)
    cols, vals = [], []
    for scope, mask in enumerate((np.ones(len(live)), live.astype(float))):
        base = (scope * len(KERNEL_TYPES) + c["type"]) * K_BUCKETS + np.minimum(c["k"], K_BUCKETS - 1)
        for v, value in enumerate(values):
            for w, weight in weightings:
                cols.append((base * len(VALUES) + v) * len(WEIGHTS) + w)
                vals.append(value * weight * mask)
    return np.stack(cols, 1), np.stack(vals, 1)


def table_features(table: OpTable, fusion=DEFAULT_FUSION, chunk: int = 2048) -> sparse.csr_matrix:
    """Per-architecture feature sums, ``(n_archs, N_COLS)`` sparse, of an op table."""
    blocks = []
    for start in range(0, len(table), chunk):
        part = _slice_table(table, start, min(start + chunk, len(table)))
        kt = decompose(part, fusion)
        cols, vals = kernel_slots(kt, live_kernels(part, kt))
        rows = np.repeat(kt.arch_of, cols.shape[1])
        blocks.append(sparse.csr_matrix((vals.ravel(), (rows, cols.ravel())), shape=(len(part), N_COLS)))
    return sparse.vstack(blocks, format="csr") if blocks else sparse.csr_matrix((0, N_COLS))


def _slice_table(table: OpTable, a: int, b: int) -> OpTable:
    if a == 0 and b == len(table):
        return table
    r0, r1 = table.ptr[a], table.ptr[b]
    e0, e1 = table.edge_ptr[r0], table.edge_ptr[r1]
    return OpTable(table.ptr[a:b + 1] - r0, {k: v[r0:r1] for k, v in table.cols.items()},
                   table.in_size[a:b], table.in_last[a:b], table.edge_ptr[r0:r1 + 1] - e0, table.edges[e0:e1])


def arch_table(space, archs) -> OpTable:
    """The op table of architectures of ``space`` given as encodings, codes or IR :class:`Arch` objects."""
    return to_table([a if isinstance(a, Arch) else space.to_ir(a) for a in archs])


def arch_features(space, archs, fusion=DEFAULT_FUSION) -> sparse.csr_matrix:
    """Feature sums of architectures of ``space`` given as encodings, codes or IR :class:`Arch` objects."""
    return table_features(arch_table(space, archs), fusion)


def predict_features(features: sparse.spmatrix, intercept: float, theta: np.ndarray) -> np.ndarray:
    """``intercept + features @ theta`` as a flat array."""
    return intercept + np.asarray(features @ theta).ravel()


# ------------------------------------------------------------------------------------------ files
def round_param(x: float) -> float:
    """A parameter as stored in a file (8 significant digits: a device whose intercept and kernel terms
    partly cancel still predicts what it predicted before saving, to 1e-6)."""
    return float(f"{x:.8g}")


def sparse_theta(theta: np.ndarray) -> dict:
    """The non-zero parameters by feature name (the file form)."""
    return {column_name(i): round_param(theta[i]) for i in np.flatnonzero(theta)}


def dense_theta(d: dict, where: str, signed: bool = False) -> np.ndarray:
    """Parameters from their named form; non-negative unless ``signed`` (a calibrated device's may not be).
    Raises :class:`~zeroshot.errors.DeviceError` naming ``where`` and what is wrong."""
    if not isinstance(d, dict):
        raise DeviceError(f"{where}: 'theta' must map feature names to numbers, got {type(d).__name__}")
    theta = np.zeros(N_COLS)
    for name, value in d.items():
        try:
            theta[column_index(name)] = float(value)
        except KeyError as e:
            raise DeviceError(f"{where}: {e.args[0]}") from None
        except (TypeError, ValueError):
            raise DeviceError(f"{where}: cost parameter {name!r} must be a number, got {value!r}") from None
    if not np.all(np.isfinite(theta)):
        raise DeviceError(f"{where}: cost parameters must be finite numbers")
    if not signed and np.any(theta < 0):
        raise DeviceError(f"{where}: source cost parameters must be non-negative; rebuild the prior with "
                          f"`python -m zeroshot.estimator.calibration_prior`")
    return theta


def check_version(d: dict, where: str) -> None:
    """Refuse (:class:`~zeroshot.errors.DeviceError`) parameters fitted on other features."""
    if d.get("feature_version") != FEATURE_VERSION:
        raise DeviceError(f"{where} was fitted with feature version {d.get('feature_version')!r}, this "
                          f"zeroshot uses {FEATURE_VERSION}; recalibrate it with `zeroshot calibrate`")
