# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Bit-packed binary activation codes: packing, Hamming Gram matrices and distinct-row counts.

Built as ``zeroshot._binary``; the validating wrappers are in :mod:`zeroshot.proxies.compiled`.
A code matrix is ``(rows, words)`` uint64 where bit ``j % 64`` of word ``j // 64`` holds column ``j``
(``x[r, j] > 0``); padding bits are zero in every row, so they never change a Hamming distance.
"""
from libc.stdint cimport int64_t, uint64_t


cdef extern from *:
    """
    #include <stdint.h>
    #if defined(__GNUC__) || defined(__clang__)
    #if defined(__x86_64__) && !defined(__POPCNT__)
    /* every x86-64 CPU since 2008 has POPCNT; without it GCC calls a slow library routine */
    __attribute__((target("popcnt")))
    #endif
    static int64_t zs_hamming(const uint64_t *a, const uint64_t *b, Py_ssize_t n) {
        int64_t d = 0;
        for (Py_ssize_t w = 0; w < n; w++) d += __builtin_popcountll(a[w] ^ b[w]);
        return d;
    }
    #else
    static int64_t zs_hamming(const uint64_t *a, const uint64_t *b, Py_ssize_t n) {
        int64_t d = 0;
        for (Py_ssize_t w = 0; w < n; w++) {
            uint64_t x = a[w] ^ b[w];
            x = x - ((x >> 1) & 0x5555555555555555ULL);
            x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
            x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
            d += (int64_t)((x * 0x0101010101010101ULL) >> 56);
        }
        return d;
    }
    #endif
    """
    int64_t zs_hamming(const uint64_t *a, const uint64_t *b, Py_ssize_t n) nogil


def pack_signs(const float[:, ::1] x, uint64_t[:, ::1] out):
    """Set bit ``j`` of row ``r`` of ``out`` to ``x[r, j] > 0``; padding bits of the last word are 0."""
    cdef Py_ssize_t r, j, b, stop, n = x.shape[0], m = x.shape[1], words = out.shape[1]
    cdef uint64_t w
    with nogil:
        for r in range(n):
            for j in range(words):
                w = 0
                stop = m - 64 * j if m - 64 * j < 64 else 64
                for b in range(stop):
                    if x[r, 64 * j + b] > 0:
                        w |= (<uint64_t>1) << b
                out[r, j] = w


def hamming_gram(const uint64_t[:, ::1] codes, int64_t[:, ::1] out):
    """Add the Hamming distance of every pair of rows of ``codes`` to ``out`` (symmetric, zero diagonal)."""
    cdef Py_ssize_t i, j, n = codes.shape[0], words = codes.shape[1]
    cdef int64_t d
    if n == 0 or words == 0:
        return
    with nogil:
        for i in range(n):
            for j in range(i + 1, n):
                d = zs_hamming(&codes[i, 0], &codes[j, 0], words)
                out[i, j] += d
                out[j, i] += d


def row_hashes(const uint64_t[:, ::1] codes, uint64_t[::1] out):
    """A 64-bit hash of every row (splitmix64 chained over the words)."""
    cdef Py_ssize_t i, w, n = codes.shape[0], words = codes.shape[1]
    cdef uint64_t h, z
    with nogil:
        for i in range(n):
            h = 0x9E3779B97F4A7C15ULL
            for w in range(words):
                z = h ^ codes[i, w]
                z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
                z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
                h = z ^ (z >> 31)
            out[i] = h


cdef inline bint _rows_equal(const uint64_t[:, ::1] codes, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    cdef Py_ssize_t w
    for w in range(codes.shape[1]):
        if codes[a, w] != codes[b, w]:
            return False
    return True


def count_distinct_sorted(const uint64_t[:, ::1] codes, const int64_t[::1] order,
                          const uint64_t[::1] hashes, int64_t[::1] scratch):
    """Number of distinct rows of ``codes``, given ``order`` sorting the rows by ``hashes``.

    Rows with equal hashes are compared word by word against every distinct row of their run, so a
    hash collision never merges two different rows.  ``scratch``: at least ``len(order)`` int64.
    """
    cdef Py_ssize_t n = order.shape[0], start = 0, end, i, k, n_rep
    cdef int64_t distinct = 0
    cdef bint seen
    with nogil:
        while start < n:
            end = start + 1
            while end < n and hashes[order[end]] == hashes[order[start]]:
                end += 1
            n_rep = 0
            for i in range(start, end):
                seen = False
                for k in range(n_rep):
                    if _rows_equal(codes, order[i], scratch[k]):
                        seen = True
                        break
                if not seen:
                    scratch[n_rep] = order[i]
                    n_rep += 1
            distinct += n_rep
            start = end
    return distinct


def count_distinct_narrow(const uint64_t[:, ::1] codes, uint64_t[::1] bitmap):
    """Number of distinct rows of a one-word code matrix whose codes are below ``64 * len(bitmap)``, in
    one pass with a bitmap (``bitmap``: zeroed; for sample-wise patterns of 16 samples, 1,024 words).
    Linear time, where hashing and sorting millions of codes costs a second or more."""
    cdef Py_ssize_t i, n = codes.shape[0]
    cdef uint64_t c, bit
    cdef int64_t distinct = 0
    with nogil:
        for i in range(n):
            c = codes[i, 0]
            bit = (<uint64_t>1) << (c & 63)
            if not (bitmap[c >> 6] & bit):
                bitmap[c >> 6] |= bit
                distinct += 1
    return distinct
