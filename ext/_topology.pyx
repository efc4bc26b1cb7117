# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Graph and signal-propagation features of a batch of architectures (op-table rows, no torch).

Built as ``zeroshot._topology``; the Python wrapper is :func:`zeroshot.proxies.topology.topology_features`.
Kinds follow ``zeroshot.spaces.ir``.  One pass in execution order over every architecture computes, per tensor
(slot 0: the network input, slot ``i + 1``: the output of op ``i``):

* ``paths``: number of input->tensor paths (ZERO ops cut every path through them);
* ``longest`` / ``shortest``: most / fewest weighted ops (conv, transposed conv and linear count 1) on such
  a path;
* ``logvar``: log of the second moment of the tensor at initialisation, with N(0, 1) weights, BN removed
  and independent branches (the DeepMAD / MAE-DET entropy, generalised from chains to DAGs).

A reverse pass marks the ops lying on an input->output path (``live``).  Tensors no path reaches get
``paths = 0`` and ``-inf`` / ``+inf`` / ``-inf`` for ``longest`` / ``shortest`` / ``logvar``; a network
no path crosses gets ``-inf`` entropy, depth and shortest (ranked last).
"""
from libc.math cimport INFINITY, exp, log
from libc.stdint cimport int64_t, uint8_t

cdef enum:
    CONV = 0
    ACT = 2
    ADD = 3
    MUL = 4
    AVGPOOL = 5
    LINEAR = 7
    ZERO = 8
    CONCAT = 10
    DECONV = 13

cdef enum:       # activation codes (ir.ACT_CODES) whose gain differs from the relu-like halving
    SIGMOID = 4
    HSIGMOID = 5
    TANH = 8

#: the IR op kinds and activation codes this kernel reads, by name (tests check them against ``zeroshot.spaces.ir``)
KINDS = {"conv": CONV, "act": ACT, "add": ADD, "mul": MUL, "avgpool": AVGPOOL, "linear": LINEAR, "zero": ZERO,
         "concat": CONCAT, "deconv": DECONV}
ACTS = {"sigmoid": SIGMOID, "hsigmoid": HSIGMOID, "tanh": TANH}

# columns of ``out``
cdef enum:
    F_ENTROPY = 0
    F_PATHS = 1
    F_DEPTH = 2
    F_SHORTEST = 3
    F_MERGES = 4
    F_CONVS = 5
N_FEATURES = 6

cdef double LOG2 = 0.6931471805599453
cdef double LOG16 = 2.772588722239781
cdef double LOG36 = 3.58351893845611


cdef inline double _act_gain(int64_t code) noexcept nogil:
    """log of the second-moment gain of an activation on a zero-mean Gaussian input (ir.ACT_CODES):
    relu-like units (relu, relu6, hswish, silu, gelu) halve it; sigmoid, hard sigmoid and tanh are taken as
    their linearisations at 0 (slopes 1/4, 1/6 and 1)."""
    if code == SIGMOID:
        return -LOG16
    if code == HSIGMOID:
        return -LOG36
    if code == TANH:
        return 0.0
    return -LOG2


def topology(const int64_t[::1] ptr, const int64_t[::1] kind, const int64_t[::1] c_in,
             const int64_t[::1] c_out, const int64_t[::1] k, const int64_t[::1] kw,
             const int64_t[::1] stride, const int64_t[::1] groups,
             const int64_t[::1] act, const int64_t[::1] last_use, const int64_t[::1] in_last,
             const int64_t[::1] edge_ptr, const int64_t[::1] edges, double[:, ::1] out, uint8_t[::1] live,
             double[::1] paths, double[::1] longest, double[::1] shortest, double[::1] logvar,
             uint8_t[::1] back):
    """Fill ``out[a, :]`` (entropy, paths, depth, shortest, merges, convs) and ``live[row]``.

    ``paths``, ``longest``, ``shortest``, ``logvar`` and ``back`` are scratch of at least the largest
    op count + 1.  Network-level values: paths summed, depth the max, shortest the min and entropy the
    log-sum-exp over output tensors; merges counts live add / mul / concat ops joining >= 2 live
    inputs; convs counts live convolutions.
    """
    cdef Py_ssize_t a, i, r, e, s, base, n, n_arch = ptr.shape[0] - 1
    cdef int64_t kk, n_in
    cdef double p, lo, sh, v, m, acc, w, chans
    cdef double tot_paths, depth, shortest_out, ent_max, ent_acc
    cdef int64_t merges, convs
    with nogil:
        for a in range(n_arch):
            base = ptr[a]
            n = ptr[a + 1] - base
            paths[0] = 1.0
            longest[0] = 0.0
            shortest[0] = 0.0
            logvar[0] = 0.0
            for i in range(n):
                r = base + i
                kk = kind[r]
                p = 0.0
                lo = -INFINITY
                sh = INFINITY
                m = -INFINITY          # max logvar over reached inputs (log-sum-exp shift)
                n_in = 0
                if kk != ZERO:
                    for e in range(edge_ptr[r], edge_ptr[r + 1]):
                        s = edges[e] + 1
                        if paths[s] > 0:
                            n_in += 1
                            p += paths[s]
                            if longest[s] > lo:
                                lo = longest[s]
                            if shortest[s] < sh:
                                sh = shortest[s]
                            if logvar[s] > m:
                                m = logvar[s]
                if kk == MUL and n_in < edge_ptr[r + 1] - edge_ptr[r]:
                    p = 0.0            # a product with a zero factor carries no signal
                paths[i + 1] = p
                back[i + 1] = 0
                if p == 0:
                    longest[i + 1] = -INFINITY
                    shortest[i + 1] = INFINITY
                    logvar[i + 1] = -INFINITY
                    continue
                w = 1.0 if (kk == CONV or kk == DECONV or kk == LINEAR) else 0.0
                longest[i + 1] = lo + w
                shortest[i + 1] = sh + w
                s = edges[edge_ptr[r]] + 1
                if kk == CONV:
                    v = logvar[s] + log(<double>(c_in[r] // groups[r] * k[r] * kw[r]))
                elif kk == DECONV:     # each output sums over the taps its stride leaves it (on average)
                    v = (logvar[s] + log(<double>(c_in[r] // groups[r] * k[r] * kw[r]))
                         - log(<double>(stride[r] * stride[r])))
                elif kk == LINEAR:
                    v = logvar[s] + log(<double>c_in[r])
                elif kk == ACT:
                    v = logvar[s] + _act_gain(act[r])
                elif kk == AVGPOOL:
                    v = logvar[s] - log(<double>(k[r] * kw[r]))
                elif kk == ADD or kk == MUL or kk == CONCAT:
                    acc = 0.0
                    chans = 0.0
                    for e in range(edge_ptr[r], edge_ptr[r + 1]):
                        s = edges[e] + 1
                        if paths[s] > 0:
                            if kk == ADD:
                                acc += exp(logvar[s] - m)
                            elif kk == CONCAT:   # channel-weighted mean (the network input weighs 1)
                                w = c_out[base + s - 1] if s > 0 else 1.0
                                acc += w * exp(logvar[s] - m)
                                chans += w
                            else:
                                acc += logvar[s]
                    if kk == ADD:
                        v = m + log(acc)
                    elif kk == CONCAT:
                        v = m + log(acc / chans)
                    else:
                        v = acc
                else:                  # bn (removed), pools other than avg, gap, upsample: unchanged
                    v = logvar[s]
                logvar[i + 1] = v
            # reverse pass: ops on an input->output path
            back[0] = 0
            merges = 0
            convs = 0
            tot_paths = 0.0
            depth = -INFINITY
            shortest_out = INFINITY
            ent_max = -INFINITY
            if in_last[a] == n:        # the input is itself an output (an identity network or segment)
                tot_paths = 1.0
                depth = 0.0
                shortest_out = 0.0
                ent_max = 0.0
            for i in range(n - 1, -1, -1):
                r = base + i
                if last_use[r] == n and paths[i + 1] > 0:
                    back[i + 1] = 1
                    tot_paths += paths[i + 1]
                    if longest[i + 1] > depth:
                        depth = longest[i + 1]
                    if shortest[i + 1] < shortest_out:
                        shortest_out = shortest[i + 1]
                    if logvar[i + 1] > ent_max:
                        ent_max = logvar[i + 1]
                live[r] = back[i + 1] and paths[i + 1] > 0
                if not live[r]:
                    continue
                kk = kind[r]
                convs += kk == CONV or kk == DECONV
                n_in = 0
                for e in range(edge_ptr[r], edge_ptr[r + 1]):
                    s = edges[e] + 1
                    if paths[s] > 0:
                        back[s] = 1
                        n_in += 1
                if n_in >= 2 and (kk == ADD or kk == MUL or kk == CONCAT):
                    merges += 1
            ent_acc = 1.0 if in_last[a] == n else 0.0
            if ent_max > -INFINITY:
                for i in range(n):
                    if last_use[base + i] == n and paths[i + 1] > 0:
                        ent_acc += exp(logvar[i + 1] - ent_max)
                out[a, F_ENTROPY] = ent_max + log(ent_acc)
            else:
                out[a, F_ENTROPY] = -INFINITY
            out[a, F_PATHS] = tot_paths
            out[a, F_DEPTH] = depth
            out[a, F_SHORTEST] = shortest_out if tot_paths > 0 else -INFINITY
            out[a, F_MERGES] = merges
            out[a, F_CONVS] = convs
