"""Validating wrappers of the compiled kernels ``zeroshot._binary`` and ``zeroshot._linalg``.

Example
-------
>>> import numpy as np
>>> codes = pack_signs(np.array([[1, -1, 2], [1, 1, -3]], np.float32))
>>> hamming_gram(codes).tolist()
[[0, 2], [2, 0]]
>>> count_distinct_rows(pack_signs(np.array([[1, 0], [2, 0], [0, 1]], np.float32)))
2
>>> round(logdet(np.array([[2.0, 0.0], [0.0, 3.0]])), 6) == round(float(np.log(6.0)), 6)
True
"""
from __future__ import annotations

import numpy as np

from .._binary import count_distinct_narrow, count_distinct_sorted, hamming_gram as _hamming_gram
from .._binary import pack_signs as _pack_signs, row_hashes
from .._linalg import cholesky_logdet_inplace, eigvalsh_inplace, sum_log_abs

__all__ = ["NARROW_BITS", "count_distinct_rows", "eigvalsh", "hamming_gram", "logdet", "pack_signs"]

NARROW_BITS = 26        # one-word codes below 2**26 are counted with a bitmap (8 MiB at most)


def pack_signs(x) -> np.ndarray:
    """``(rows, ceil(cols / 64))`` uint64 codes of ``x > 0`` for a 2-D array (rows: samples or units)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"pack_signs expects a 2-D (rows, columns) array, got shape {x.shape}")
    out = np.empty((x.shape[0], (x.shape[1] + 63) // 64), np.uint64)
    _pack_signs(x, out)
    return out


def hamming_gram(codes, out: np.ndarray | None = None) -> np.ndarray:
    """Pairwise Hamming distances of the rows of a packed code matrix, added to ``out`` (int64)."""
    codes = _codes(codes)
    n = codes.shape[0]
    if out is None:
        out = np.zeros((n, n), np.int64)
    elif out.shape != (n, n) or out.dtype != np.int64 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous int64 ({n}, {n}) array, got {out.dtype} {out.shape}")
    _hamming_gram(codes, out)
    return out


def count_distinct_rows(codes) -> int:
    """Number of distinct rows of a packed code matrix: a bitmap for one-word codes of at most
    :data:`NARROW_BITS` bits (sample-wise patterns of up to 26 samples, linear time), otherwise hash, sort
    and an exact check of equal hashes."""
    codes = _codes(codes)
    n = codes.shape[0]
    if codes.shape[1] == 1 and n:
        bits = int(np.bitwise_or.reduce(codes[:, 0])).bit_length()
        if bits <= NARROW_BITS:
            return int(count_distinct_narrow(codes, np.zeros(max(1, (1 << bits) >> 6), np.uint64)))
    hashes = np.empty(n, np.uint64)
    row_hashes(codes, hashes)
    order = np.argsort(hashes, kind="stable").astype(np.int64)
    return int(count_distinct_sorted(codes, order, hashes, np.empty(max(n, 1), np.int64)))


def _codes(codes) -> np.ndarray:
    codes = np.ascontiguousarray(codes)
    if codes.ndim != 2 or codes.dtype != np.uint64:
        raise ValueError(f"expected a 2-D uint64 code matrix from pack_signs, got {codes.dtype} {codes.shape}")
    return codes


def _square(a) -> np.ndarray:
    a = np.array(a, dtype=np.float64, order="C", copy=True)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {a.shape}")
    return a


def eigvalsh(a) -> np.ndarray:
    """Ascending eigenvalues of a symmetric matrix (LAPACK ``dsyev``); NaN everywhere if it fails
    (a non-finite entry, or no convergence)."""
    a = _square(a)
    n = a.shape[0]
    w = np.empty(n, np.float64)
    if not np.isfinite(a).all():
        w.fill(np.nan)
        return w
    info = eigvalsh_inplace(a, w, np.empty(max(1, 66 * n), np.float64))   # blocked: (nb + 2) n, nb = 64
    if info != 0:
        w.fill(np.nan)
    return w


def logdet(a) -> float:
    """``log |det a|`` of a symmetric matrix: Cholesky when positive definite, else the sum of
    ``log|eigenvalue|``; ``-inf`` when numerically singular (an eigenvalue within ``n * eps`` of the
    largest one), NaN for a non-finite entry."""
    a = _square(a)
    if not np.isfinite(a).all():
        return float("nan")
    value = cholesky_logdet_inplace(a.copy())
    if np.isfinite(value):
        return float(value)
    w = eigvalsh(a)
    if not np.isfinite(w).all():
        return float("nan")
    scale = np.abs(w).max(initial=0.0)
    if np.abs(w).min(initial=scale) <= len(w) * np.finfo(np.float64).eps * scale:
        return float("-inf")
    return float(sum_log_abs(w))
