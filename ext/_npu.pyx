# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Per-kernel latency of the analytic ``npu`` accelerator model over the columns of a KernelTable.

Built as ``zeroshot.estimator._npu``; the Python wrapper is :class:`zeroshot.estimator.npu.NpuDevice`.  Kernel types follow
``zeroshot.estimator.kernel_table.KERNEL_TYPES`` (0 conv, 1 dwconv, 2 gconv, 3 bn, 4 act, 5 add, 6 mul, 7 pool, 8 gap,
9 linear, 10 zero, 11 upsample, 12 concat); the wrapper checks that order once at import.
"""
from libc.math cimport NAN
from libc.stdint cimport int64_t

cdef enum:
    CONV = 0
    DWCONV = 1
    GCONV = 2
    POOL = 7
    GAP = 8
    LINEAR = 9
    ZERO = 10
    CONCAT = 12

# what bounds a kernel (the ``bound`` codes; names in zeroshot.estimator.npu.BOUNDS)
cdef enum:
    COMPUTE_BOUND = 0
    SRAM_BOUND = 1
    DRAM_BOUND = 2
    OVERHEAD_BOUND = 3
    FOLDED = 4


cdef inline int64_t cdiv(int64_t a, int64_t b) noexcept nogil:
    return (a + b - 1) // b


cdef inline int64_t padded(int64_t a, int64_t b) noexcept nogil:
    return cdiv(a, b) * b


cdef inline int64_t cycles_of(int64_t t, int64_t c_in, int64_t c_out, int64_t h_in, int64_t w_in,
                              int64_t h_out, int64_t w_out, int64_t k, int64_t g, int64_t lanes,
                              int64_t kernel_lanes, int64_t pixel_lanes, int64_t tap_lanes) noexcept nogil:
    cdef int64_t hw = cdiv(h_out * w_out, pixel_lanes)
    if t == CONV:
        return cdiv(c_in, lanes) * cdiv(c_out, kernel_lanes) * hw * k * k
    if t == GCONV:
        return g * cdiv(c_in // g, lanes) * cdiv(c_out // g, kernel_lanes) * hw * k * k
    if t == DWCONV or t == POOL:
        return cdiv(c_out, lanes) * hw * cdiv(k * k, tap_lanes)
    if t == LINEAR:
        return cdiv(c_in, lanes) * cdiv(c_out, kernel_lanes)
    if t == GAP:
        return cdiv(c_in, lanes) * cdiv(h_in * w_in, pixel_lanes)
    if t == CONCAT:
        return 0
    return cdiv(c_out, lanes) * hw


cdef inline double lane_utilisation(int64_t t, int64_t c_in, int64_t c_out, int64_t g, int64_t lanes,
                                    int64_t kernel_lanes) noexcept nogil:
    """Useful channel lanes / lanes occupied, under the padding of ``cycles_of`` (NaN: no lanes used)."""
    if t == CONV or t == LINEAR:
        return <double>(c_in * c_out) / <double>(padded(c_in, lanes) * padded(c_out, kernel_lanes))
    if t == GCONV:
        return (<double>((c_in // g) * (c_out // g))
                / <double>(padded(c_in // g, lanes) * padded(c_out // g, kernel_lanes)))
    if t == GAP:
        return <double>c_in / <double>padded(c_in, lanes)
    if t == CONCAT or t == ZERO:
        return NAN
    return <double>c_out / <double>padded(c_out, lanes)


cdef inline double busy_s(int64_t cycles, int64_t elems_moved, int64_t weight_elems, double clock_hz,
                          double sram_bytes, double sram_bps, double dram_bps, int64_t bytes_per_element,
                          int* bound) noexcept nogil:
    """``max(compute, SRAM, DRAM)`` seconds of one kernel; ``bound`` gets the term that wins (ties: the first)."""
    cdef double act_b = <double>(elems_moved * bytes_per_element)
    cdef double w_b = <double>(weight_elems * bytes_per_element)
    cdef double dram_b = w_b + (act_b if act_b + w_b > sram_bytes else 0.0)
    cdef double sec = cycles / clock_hz
    bound[0] = COMPUTE_BOUND
    if (act_b + w_b) / sram_bps > sec:
        sec = (act_b + w_b) / sram_bps
        bound[0] = SRAM_BOUND
    if dram_b / dram_bps > sec:
        sec = dram_b / dram_bps
        bound[0] = DRAM_BOUND
    return sec


def kernel_ms(const int64_t[::1] ktype, const int64_t[::1] c_in, const int64_t[::1] c_out,
              const int64_t[::1] h_in, const int64_t[::1] w_in, const int64_t[::1] h_out,
              const int64_t[::1] w_out, const int64_t[::1] k, const int64_t[::1] groups,
              const int64_t[::1] in_elems, const int64_t[::1] out_elems, const int64_t[::1] weight_elems,
              int64_t lanes, int64_t kernel_lanes, int64_t pixel_lanes, int64_t tap_lanes,
              double clock_hz, double sram_bytes, double sram_bps, double dram_bps, double overhead_s,
              int64_t bytes_per_element, double[::1] out_ms, int64_t[::1] out_bound=None,
              double[::1] out_lanes=None):
    """Fill ``out_ms`` with every kernel's latency in milliseconds, and when given ``out_bound`` with what
    bounds it (0 compute, 1 SRAM, 2 DRAM, 3 the fixed overhead, 4 folded away) and ``out_lanes`` with its
    lane utilisation (useful channel lanes / lanes occupied; NaN for concat and zero kernels).

    cycles: conv ``ceil(C_in/P) ceil(C_out/P_k) ceil(HW_out/P_pix) K^2``; grouped conv the same per group
    times the groups; depthwise ``ceil(C_out/P) ceil(HW_out/P_pix) ceil(K^2/P_tap)``; linear
    ``ceil(C_in/P) ceil(C_out/P_k)``; pools like depthwise; other ops ``ceil(C/P) ceil(HW/P_pix)`` (gap over
    its input; concat moves data only).  Memory: input, output and weights pass through SRAM; weights come
    from DRAM; when the live set (input + output + weights) exceeds SRAM the activations also go through
    DRAM.  ``t = max(cycles / f, SRAM bytes / SRAM bandwidth, DRAM bytes / DRAM bandwidth) + overhead``;
    ``zero`` kernels are folded away (0).  A kernel is overhead-bound when the overhead exceeds the max.
    """
    cdef Py_ssize_t r, n = ktype.shape[0]
    cdef int64_t t
    cdef int bound
    cdef double sec
    cdef bint detail = out_bound is not None and out_lanes is not None
    with nogil:
        for r in range(n):
            t = ktype[r]
            if t == ZERO:
                out_ms[r] = 0.0
                if detail:
                    out_bound[r] = FOLDED
                    out_lanes[r] = NAN
                continue
            sec = busy_s(cycles_of(t, c_in[r], c_out[r], h_in[r], w_in[r], h_out[r], w_out[r], k[r],
                                   groups[r], lanes, kernel_lanes, pixel_lanes, tap_lanes),
                         in_elems[r] + out_elems[r], weight_elems[r], clock_hz, sram_bytes, sram_bps,
                         dram_bps, bytes_per_element, &bound)
            out_ms[r] = (sec + overhead_s) * 1e3
            if detail:
                out_bound[r] = OVERHEAD_BOUND if overhead_s > sec else bound
                out_lanes[r] = lane_utilisation(t, c_in[r], c_out[r], groups[r], lanes, kernel_lanes)
