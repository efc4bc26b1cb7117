# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Exact parameter, MAC and peak-activation counts of a batch of architectures (op-table rows).

Built as ``zeroshot.estimator._counts``; the Python wrapper is :func:`zeroshot.estimator.counts.analytic_counts`.
Kinds follow ``zeroshot.spaces.ir``: 0 conv, 1 bn, 7 linear, 13 deconv carry parameters and (but bn) MACs:
a conv ``weights`` per output position, a deconv (transposed conv) ``weights`` per input position.
"""
from libc.stdint cimport int64_t

cdef enum:
    CONV = 0
    BN = 1
    LINEAR = 7
    DECONV = 13

#: the IR op kinds this kernel reads, by name (tests check them against ``zeroshot.spaces.ir``)
KINDS = {"conv": CONV, "bn": BN, "linear": LINEAR, "deconv": DECONV}


def counts(const int64_t[::1] ptr, const int64_t[::1] kind, const int64_t[::1] c_in,
           const int64_t[::1] c_out, const int64_t[::1] h_in, const int64_t[::1] w_in,
           const int64_t[::1] h_out, const int64_t[::1] w_out, const int64_t[::1] k,
           const int64_t[::1] kw, const int64_t[::1] groups, const int64_t[::1] flag,
           const int64_t[::1] last_use, const int64_t[::1] in_size, const int64_t[::1] in_last,
           int64_t[::1] params, int64_t[::1] macs, int64_t[::1] peak, int64_t[::1] live):
    """Fill ``params``, ``macs`` and ``peak`` (elements, batch 1) for every architecture.

    Peak rule: a tensor is live from the step of the op that writes it through the step of its last
    reader (network outputs to the end); the peak is the largest sum of live tensor sizes over steps;
    no in-place reuse.  ``live`` is scratch of at least the largest op count + 1.
    """
    cdef Py_ssize_t a, r, i, n_ops, base, n_arch = ptr.shape[0] - 1
    cdef int64_t p, m, cur, best, size, kk, wt
    with nogil:
        for a in range(n_arch):
            base = ptr[a]
            n_ops = ptr[a + 1] - base
            p = 0
            m = 0
            for i in range(n_ops + 1):
                live[i] = 0
            # live[i] accumulates the elements freed after step i (difference array over steps)
            cur = in_size[a]
            live[in_last[a]] += in_size[a]
            best = cur
            for i in range(n_ops):
                r = base + i
                kk = kind[r]
                size = c_out[r] * h_out[r] * w_out[r]
                if kk == CONV or kk == DECONV:
                    wt = c_out[r] * (c_in[r] // groups[r]) * k[r] * kw[r]
                    p += wt + (c_out[r] if flag[r] else 0)
                    m += wt * (h_out[r] * w_out[r] if kk == CONV else h_in[r] * w_in[r])
                elif kk == BN:
                    p += 0 if flag[r] else 2 * c_out[r]
                elif kk == LINEAR:
                    p += c_in[r] * c_out[r] + (c_out[r] if flag[r] else 0)
                    m += c_in[r] * c_out[r]
                cur += size
                if cur > best:
                    best = cur
                live[last_use[r]] += size
                cur -= live[i]
            params[a] = p
            macs[a] = m
            peak[a] = best
