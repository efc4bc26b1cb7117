# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Symmetric eigenvalues and log-determinants through scipy's Cython LAPACK (GIL released).

Built as ``zeroshot._linalg``; the validating wrappers are in :mod:`zeroshot.proxies.compiled`.
Matrices are C-contiguous float64 and symmetric, so the row-major buffer is its own transpose and is
passed to Fortran LAPACK as is.  Inputs are overwritten.
"""
from libc.math cimport log, fabs, INFINITY
from scipy.linalg.cython_lapack cimport dsyev, dpotrf


def eigvalsh_inplace(double[:, ::1] a, double[::1] w, double[::1] work):
    """Eigenvalues of the symmetric ``a`` into ``w`` in ascending order (``dsyev``, values only).

    ``work``: at least ``max(1, 3n - 1)`` doubles.  Returns LAPACK's ``info`` (0: success).
    """
    cdef int n = a.shape[0], lda = a.shape[0], lwork = work.shape[0], info = 0
    cdef char jobz = b'N', uplo = b'L'
    if n == 0:
        return 0
    with nogil:
        dsyev(&jobz, &uplo, &n, &a[0, 0], &lda, &w[0], &work[0], &lwork, &info)
    return info


def cholesky_logdet_inplace(double[:, ::1] a):
    """``log det a`` of a symmetric positive-definite ``a`` by ``dpotrf``; NaN when it is not one."""
    cdef int n = a.shape[0], lda = a.shape[0], info = 0, i
    cdef char uplo = b'L'
    cdef double s = 0.0
    if n == 0:
        return 0.0
    with nogil:
        dpotrf(&uplo, &n, &a[0, 0], &lda, &info)
        if info == 0:
            for i in range(n):
                s += log(a[i, i])
            s *= 2.0
    return s if info == 0 else float("nan")


def sum_log_abs(const double[::1] w):
    """``sum(log|w_i|)``: ``-inf`` when an eigenvalue is exactly zero."""
    cdef Py_ssize_t i
    cdef double s = 0.0
    with nogil:
        for i in range(w.shape[0]):
            if w[i] == 0.0:
                s = -INFINITY
                break
            s += log(fabs(w[i]))
    return s
