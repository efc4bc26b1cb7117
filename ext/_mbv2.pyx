# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""mbv2 code rows in bulk: curated sampling from drawn random numbers, and segment keys (built as
``zeroshot.spaces._mbv2``; wrapped by :class:`zeroshot.spaces.mbv2.Mbv2Space`, which documents the encoding and the keys).

Code row: ``[resolution, stem, head]`` then per block slot ``[present, type, kernel, expansion, channels]``.
"""
from libc.stdint cimport int16_t, int64_t

cdef enum:
    FIELDS = 5     # per block slot: present, type, kernel, expansion, channels
    HEADER = 3     # resolution, stem, head

#: the code row layout, checked against :mod:`zeroshot.spaces.mbv2` by the wrapper at import
LAYOUT = {"header": HEADER, "fields": FIELDS}


def fill_blocks(const double[:, :, ::1] u, const int16_t[:, ::1] choice, const int64_t[::1] m,
                const int64_t[:, :, ::1] widths, const int64_t[:, ::1] n_widths,
                const int64_t[:, ::1] depths, const int64_t[::1] n_depths,
                const int64_t[:, ::1] block_choices, const int64_t[::1] slot_stage,
                const int64_t[::1] slot_pos, int64_t[:, ::1] out):
    """Block slots of rows ``out`` from uniform draws: per stage a width ``widths[m, s, floor(u[0] *
    n_widths[m, s])]`` and a depth ``depths[s, floor(u[1] * n_depths[s])]``; slot ``j`` of a stage holds
    ``block_choices[choice[:, j]]`` (channels times the width) when ``j < depth``, else zeros."""
    cdef Py_ssize_t i, j, f, s, n = out.shape[0], slots = slot_stage.shape[0], stages = n_depths.shape[0]
    cdef int64_t width[64]
    cdef int64_t depth[64]
    cdef int64_t c
    if stages > 64:
        raise ValueError(f"at most 64 stages, got {stages}")
    with nogil:
        for i in range(n):
            for s in range(stages):
                width[s] = widths[m[i], s, <Py_ssize_t>(u[0, i, s] * n_widths[m[i], s])]
                depth[s] = depths[s, <Py_ssize_t>(u[1, i, s] * n_depths[s])]
            for j in range(slots):
                s = slot_stage[j]
                c = choice[i, j] if slot_pos[j] < depth[s] else 0
                for f in range(FIELDS - 1):
                    out[i, HEADER + FIELDS * j + f] = block_choices[c, f]
                out[i, HEADER + FIELDS * j + FIELDS - 1] = block_choices[c, FIELDS - 1] * width[s]


def segment_keys(const int64_t[:, ::1] codes, const int64_t[::1] stage_stride, const int64_t[::1] slot_stage,
                 int64_t[:, ::1] keys):
    """Keys of the stem, every block slot (-1 when absent) and the head of each row (the bit layout of
    :meth:`zeroshot.spaces.mbv2.Mbv2Space.segment_keys`)."""
    cdef Py_ssize_t i, j, n = codes.shape[0], slots = slot_stage.shape[0]
    cdef int64_t res, h, c, stride, present, typ, k, e, c_out, s, stage
    cdef bint first
    with nogil:
        for i in range(n):
            res = codes[i, 0]
            c = codes[i, 1]
            h = (res - 1) // 2 + 1
            keys[i, 0] = (res << 17) | c
            stage = -1
            first = True
            for j in range(slots):
                if slot_stage[j] != stage:
                    stage = slot_stage[j]
                    first = True
                present = codes[i, HEADER + FIELDS * j]
                if present != 1:
                    keys[i, j + 1] = -1
                    continue
                typ = codes[i, HEADER + FIELDS * j + 1]
                k = codes[i, HEADER + FIELDS * j + 2]
                e = codes[i, HEADER + FIELDS * j + 3]
                c_out = codes[i, HEADER + FIELDS * j + 4]
                s = stage_stride[stage] if first else 1
                keys[i, j + 1] = ((<int64_t>1 << 61) | (typ << 60) | (k << 56) | (e << 49) | (c << 32)
                                  | (c_out << 15) | (s << 13) | h)
                h = (h + 2 * (k // 2) - k) // s + 1
                c = c_out
                first = False
            keys[i, slots + 1] = (<int64_t>2 << 61) | (c << 30) | (codes[i, 2] << 13) | h
