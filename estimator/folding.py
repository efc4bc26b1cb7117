"""Constant folding and dead-op elimination: which ops a graph compiler (TFLite, XLA, TensorRT) keeps.

An op whose output does not depend on the network input (a ``zero`` op, or one reading only constants)
is folded into a constant; an op no network output depends on is removed.  NAS-Bench-201 cells whose
output node sees only ``none`` edges make the whole network constant, which is why some devices report
~0 ms for them.

Example
-------
>>> from zeroshot.spaces import get_space, to_table
>>> space = get_space("nb201")
>>> table = to_table([space.to_ir("|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|")])
>>> bool(live_ops(table).any())
False
"""
from __future__ import annotations

import numpy as np

from zeroshot.spaces.ir import OpTable

from ._folding import live_ops as _live_ops_kernel
from .kernel_table import KernelTable

__all__ = ["live_kernels", "live_ops"]


def live_ops(table: OpTable) -> np.ndarray:
    """Boolean mask of the op rows of ``table`` that remain after folding and dead-op elimination."""
    if table.edges is None:
        raise ValueError("the op table has no input edges; build it with zeroshot.spaces.ir.to_table")
    n = len(table.cols["kind"])
    const = np.empty(n, np.uint8)
    live = np.empty(n, np.uint8)
    _live_ops_kernel(table.ptr, table.cols["kind"], table.edge_ptr, table.edges, table.cols["last_use"],
                     const, live)
    return live.view(bool)


def live_kernels(table: OpTable, kt: KernelTable) -> np.ndarray:
    """Boolean mask of the kernels of ``kt`` (decomposed from ``table``) holding at least one live op."""
    out = np.zeros(len(kt.cols["type"]), bool)
    np.logical_or.at(out, kt.op_kernel, live_ops(table))
    return out
