"""Keep freed tensor memory in the process for reuse (glibc), instead of handing it back to the system.

The network-proxy suite allocates and frees hundreds of MB per architecture (the retained graph, the
activations and gradients several proxies read, per-sample gradients). With glibc's default settings most of
it is returned to the system when freed (``munmap``, heap trimming), so the next architecture page-faults
every page back in, while a lone forward+backward, whose memory glibc keeps, is not affected. With this
setting the 13-proxy suite's cost on 4 NB201 cells went from 3.43 to 3.30 forward+backward passes in one
session (``benchmarks/results/proxies_cost_breakdown*.md``), and the 10-cell table of ``proxies_nb201.md``
from 4.22 to 3.52 across two runs (README, "Zero-shot proxies"). :func:`keep_freed_memory` serves blocks up to
32 MB from the heap and trims the heap only above 1 GB of free memory at its top; the process then holds up to
its peak use. The command line applies it at start (so forked workers inherit it); library users can call it.

Example
-------
>>> applied = keep_freed_memory()      # once, before computing proxies for many architectures
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3      # mallopt parameters (glibc's malloc.h)
MMAP_THRESHOLD = 32 << 20      # blocks above this come from mmap (glibc's own ceiling for its dynamic threshold)
TRIM_THRESHOLD = 1 << 30       # free memory at the top of the heap kept before trimming

_applied: list[bool] = []


def keep_freed_memory() -> bool:
    """Apply the settings above to this process once (later calls return the first result); True when
    applied, False where the C library is not glibc or refuses them."""
    if not _applied:
        _applied.append(_mallopt())
    return _applied[0]


def _mallopt() -> bool:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
