# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Per-architecture metrics from cached per-segment values (built as ``zeroshot.estimator._segments``).

Wrapped by :class:`zeroshot.estimator.segmented.SegmentedEvaluator`.
"""
from libc.stdint cimport int64_t, uint8_t, uint64_t

cdef enum:
    SUM = 0
    MAX = 1
    LAT = 2        # latency: summed, minus the entry kernel where the device fuses across the boundary
    ENTRY = 3      # followed by ENTRY_MS and EXIT columns of the same latency metric
    ENTRY_MS = 4
    EXIT = 5
    LIVE_SUM = 6   # summed; 0 when a segment's value is NaN (no input->output path through it)

#: the column kinds of :func:`combine`, by name (read by the wrapper)
COLUMN_KINDS = {"sum": SUM, "max": MAX, "lat": LAT, "entry": ENTRY, "entry_ms": ENTRY_MS, "exit": EXIT,
                "live_sum": LIVE_SUM}


cdef inline Py_ssize_t _home(int64_t key, int shift) noexcept nogil:
    return <Py_ssize_t>((<uint64_t>key * 0x9E3779B97F4A7C15ULL) >> shift)


def build_index(const int64_t[::1] cache, int64_t[::1] table, int shift):
    """Open-addressing hash index of the keys of ``cache`` (all >= 0): ``table`` (size ``2 ** (64 - shift)``,
    more than twice the keys, filled with -1) gets each key's row at its Fibonacci-hash slot or the next
    free one."""
    cdef Py_ssize_t i, slot, mask = table.shape[0] - 1
    with nogil:
        for i in range(cache.shape[0]):
            slot = _home(cache[i], shift)
            while table[slot] >= 0:
                slot = (slot + 1) & mask
            table[slot] = i


def lookup(const int64_t[:, ::1] keys, const int64_t[::1] cache, const int64_t[::1] table, int shift,
           int64_t[:, ::1] pos):
    """Row of each key in ``cache`` through its :func:`build_index` ``table`` (-1: unused slot, key < 0;
    -2: not cached).

    Returns how many keys are not cached."""
    cdef Py_ssize_t i, j, slot, mask = table.shape[0] - 1
    cdef int64_t key, row, missing = 0
    with nogil:
        for i in range(keys.shape[0]):
            for j in range(keys.shape[1]):
                key = keys[i, j]
                if key < 0:
                    pos[i, j] = -1
                    continue
                slot = _home(key, shift)
                while True:
                    row = table[slot]
                    if row < 0:
                        pos[i, j] = -2
                        missing += 1
                        break
                    if cache[row] == key:
                        pos[i, j] = row
                        break
                    slot = (slot + 1) & mask
    return missing


def combine(const int64_t[:, ::1] pos, const double[:, ::1] vals, const int64_t[::1] kinds,
            const uint8_t[:, :, ::1] fusable, double[:, ::1] out):
    """``out[i, c]`` = the reduction of column ``c`` over row ``i``'s segments (``kinds[c]``).

    A LAT column ``c`` owns columns c+1..c+3 (entry kind, entry kernel ms, exit head kind) and the
    ``fusable[g]`` table of the g-th latency column: fused[exit head, entry kind].  An exit kind of -2
    marks a pass-through segment (its output is its input, which nothing in it reads)."""
    cdef Py_ssize_t i, j, c, g, p, prev, n_cols = kinds.shape[0]
    cdef double acc
    cdef int64_t ex, en
    with nogil:
        for i in range(pos.shape[0]):
            g = 0
            for c in range(n_cols):
                if kinds[c] == SUM:
                    acc = 0
                    for j in range(pos.shape[1]):
                        p = pos[i, j]
                        if p >= 0:
                            acc = acc + vals[p, c]
                elif kinds[c] == MAX:
                    acc = -1e300
                    for j in range(pos.shape[1]):
                        p = pos[i, j]
                        if p >= 0 and vals[p, c] > acc:
                            acc = vals[p, c]
                elif kinds[c] == LIVE_SUM:
                    acc = 0
                    for j in range(pos.shape[1]):
                        p = pos[i, j]
                        if p >= 0:
                            if vals[p, c] != vals[p, c]:
                                acc = 0
                                break
                            acc = acc + vals[p, c]
                elif kinds[c] == LAT:
                    acc = 0
                    prev = -1
                    for j in range(pos.shape[1]):
                        p = pos[i, j]
                        if p < 0:
                            continue
                        acc = acc + vals[p, c]
                        if prev >= 0:
                            ex = <int64_t>vals[prev, c + 3]
                            en = <int64_t>vals[p, c + 1]
                            if ex >= 0 and fusable[g, ex, en]:
                                acc = acc - vals[p, c + 2]
                        if vals[p, c + 3] != -2:       # pass-through segments keep the previous exit
                            prev = p
                    g += 1
                else:
                    continue
                out[i, c] = acc
