# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Constant folding and dead-op elimination over op-table rows, as graph compilers do it.

Built as ``zeroshot.estimator._folding``; the Python wrapper is :func:`zeroshot.estimator.folding.live_ops`.
"""
from libc.stdint cimport int64_t, uint8_t

cdef enum:
    ZERO = 8

#: the IR op kinds this kernel reads, by name (tests check them against ``zeroshot.spaces.ir``)
KINDS = {"zero": ZERO}


def live_ops(const int64_t[::1] ptr, const int64_t[::1] kind, const int64_t[::1] edge_ptr,
             const int64_t[::1] edges, const int64_t[::1] last_use, uint8_t[::1] const_,
             uint8_t[::1] live):
    """Fill ``const_`` (the op's output does not depend on the network input) and ``live`` (the op is
    not constant and some network output depends on it) for every op row.

    An op is constant when it is a ``zero`` op or all its inputs are constant (the network input, -1 in
    ``edges``, never is).  Liveness runs backwards from the outputs (``last_use`` = the op count) through
    the non-constant inputs of live ops.
    """
    cdef Py_ssize_t a, i, e, r, base, n_ops, n_arch = ptr.shape[0] - 1
    cdef int64_t src
    cdef uint8_t c
    with nogil:
        for a in range(n_arch):
            base = ptr[a]
            n_ops = ptr[a + 1] - base
            for i in range(n_ops):
                r = base + i
                live[r] = 0
                if kind[r] == ZERO:
                    const_[r] = 1
                    continue
                c = 1
                for e in range(edge_ptr[r], edge_ptr[r + 1]):
                    src = edges[e]
                    if src < 0 or not const_[base + src]:
                        c = 0
                        break
                const_[r] = c
            for i in range(n_ops - 1, -1, -1):
                r = base + i
                if const_[r]:
                    continue
                if last_use[r] == n_ops:
                    live[r] = 1
                if not live[r]:
                    continue
                for e in range(edge_ptr[r], edge_ptr[r + 1]):
                    src = edges[e]
                    if src >= 0 and not const_[base + src]:
                        live[base + src] = 1
