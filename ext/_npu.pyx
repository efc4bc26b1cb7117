# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Per-kernel latency of the analytic ``npu`` accelerator model over the columns of a KernelTable.

Built as ``zeroshot.estimator._npu``; the Python wrapper is :class:`zeroshot.estimator.npu.NpuDevice`.  Kernel types follow
``zeroshot.estimator.kernels.KERNEL_TYPES`` (0 conv, 1 dwconv, 2 gconv, 3 bn, 4 act, 5 add, 6 mul, 7 pool, 8 gap,
9 linear, 10 zero, 11 upsample, 12 concat); the wrapper checks that order once at import.
"""
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


cdef inline int64_t cdiv(int64_t a, int64_t b) nogil:
    return (a + b - 1) // b


def kernel_ms(const int64_t[::1] ktype, const int64_t[::1] c_in, const int64_t[::1] c_out,
              const int64_t[::1] h_in, const int64_t[::1] w_in, const int64_t[::1] h_out,
              const int64_t[::1] w_out, const int64_t[::1] k, const int64_t[::1] groups,
              const int64_t[::1] in_elems, const int64_t[::1] out_elems, const int64_t[::1] weight_elems,
              int64_t lanes, int64_t kernel_lanes, int64_t pixel_lanes, int64_t tap_lanes,
              double clock_hz, double sram_bytes, double sram_bps, double dram_bps, double overhead_s,
              int64_t bytes_per_element, double[::1] out_ms):
    """Fill ``out_ms`` with every kernel's latency in milliseconds.

    cycles: conv ``ceil(C_in/P) ceil(C_out/P_k) ceil(HW_out/P_pix) K^2``; grouped conv the same per group
    times the groups; depthwise ``ceil(C_out/P) ceil(HW_out/P_pix) ceil(K^2/P_tap)``; linear
    ``ceil(C_in/P) ceil(C_out/P_k)``; pools like depthwise; other ops ``ceil(C/P) ceil(HW/P_pix)`` (gap over
    its input; concat moves data only).  Memory: input, output and weights pass through SRAM; weights come
    from DRAM; when the live set (input + output + weights) exceeds SRAM the activations also go through
    DRAM.  ``t = max(cycles / f, SRAM bytes / SRAM bandwidth, DRAM bytes / DRAM bandwidth) + overhead``;
    ``zero`` kernels are folded away (0).
    """
    cdef Py_ssize_t r, n = ktype.shape[0]
    cdef int64_t t, g, hw, cycles
    cdef double act_b, w_b, dram_b, sec
    with nogil:
        for r in range(n):
            t = ktype[r]
            if t == ZERO:
                out_ms[r] = 0.0
                continue
            hw = cdiv(h_out[r] * w_out[r], pixel_lanes)
            if t == CONV:
                cycles = cdiv(c_in[r], lanes) * cdiv(c_out[r], kernel_lanes) * hw * k[r] * k[r]
            elif t == GCONV:
                g = groups[r]
                cycles = g * cdiv(c_in[r] // g, lanes) * cdiv(c_out[r] // g, kernel_lanes) * hw * k[r] * k[r]
            elif t == DWCONV or t == POOL:
                cycles = cdiv(c_out[r], lanes) * hw * cdiv(k[r] * k[r], tap_lanes)
            elif t == LINEAR:
                cycles = cdiv(c_in[r], lanes) * cdiv(c_out[r], kernel_lanes)
            elif t == GAP:
                cycles = cdiv(c_in[r], lanes) * cdiv(h_in[r] * w_in[r], pixel_lanes)
            elif t == CONCAT:
                cycles = 0
            else:
                cycles = cdiv(c_out[r], lanes) * hw
            act_b = <double>((in_elems[r] + out_elems[r]) * bytes_per_element)
            w_b = <double>(weight_elems[r] * bytes_per_element)
            dram_b = w_b + (act_b if act_b + w_b > sram_bytes else 0.0)
            sec = cycles / clock_hz
            if (act_b + w_b) / sram_bps > sec:
                sec = (act_b + w_b) / sram_bps
            if dram_b / dram_bps > sec:
                sec = dram_b / dram_bps
            out_ms[r] = (sec + overhead_s) * 1e3
