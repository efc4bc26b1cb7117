"""Kinks frozen at an input: the ops whose derivative jumps (ReLU-like activations, max pools) and
:class:`Frozen`, such an op held on the pieces it took for one input, so that a finite difference of
gradients (grasp's) differentiates the branch an exact Hessian does and sees no kink."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from zeroshot.spaces.ir import ACT, MAXPOOL, Arch

__all__ = ["Frozen"]

_CLAMPS = {"relu": (0.0, math.inf), "relu6": (0.0, 6.0), "hswish": (3.0, 6.0),     # clamp(x + shift, 0, top)
           "hsigmoid": (3.0, 6.0)}


def _kinked_ops(arch: Arch, live: np.ndarray) -> dict[int, list[int]]:
    """Input tensor -> the live ops reading it whose derivative jumps (ReLU-like activations, max pools)."""
    out: dict[int, list[int]] = {}
    for i, op in enumerate(arch.ops):
        if live[i] and (op.kind == MAXPOOL or (op.kind == ACT and op.act in _CLAMPS)):
            out.setdefault(op.inputs[0], []).append(i)
    return out


class Frozen(nn.Module):
    """A ReLU-like activation or a max pool with its pieces frozen as they were for the input ``x0``: the
    linear branch that an exact (double-backward) Hessian differentiates, for which a finite difference
    of gradients sees no kink.  ``relu = clamp(x, 0, inf)``, ``relu6 = clamp(x, 0, 6)``,
    ``hswish = x * clamp(x + 3, 0, 6) / 6``, ``hsigmoid = clamp(x + 3, 0, 6) / 6``; a max pool keeps its
    argmax (any kernel, strides, dilation; asymmetric padding, ceil mode's included, as -inf)."""

    def __init__(self, op, x0: torch.Tensor):
        super().__init__()
        self.op = op
        if op.kind == MAXPOOL:
            self.idx = F.max_pool2d(self._padded(x0), op.kernel, op.strides, self._pad, op.dilation,
                                    return_indices=True)[1]
            return
        shift, top = _CLAMPS[op.act]
        z = x0 + shift if shift else x0
        self.mid = z > 0                                    # boolean masks: the pieces of the clamp
        self.high = None
        if math.isfinite(top):
            self.mid &= z < top
            self.high = (z >= top) * top

    @property
    def _pad(self) -> int | tuple[int, int]:
        """The padding max_pool2d applies itself: the op's when symmetric, else none (see _padded)."""
        t, b, l, r = self.op.padding
        return (t, l) if (t, l) == (b, r) else 0

    def _padded(self, x):
        t, b, l, r = self.op.padding
        return x if self._pad != 0 else F.pad(x, (l, r, t, b), value=-math.inf)

    def forward(self, x):
        if self.op.kind == MAXPOOL:
            return self._padded(x).flatten(2).gather(2, self.idx.flatten(2)).view(self.idx.shape)
        shift, top = _CLAMPS[self.op.act]
        c = (x + shift) * self.mid if shift else x * self.mid
        if self.high is not None:
            c = c + self.high
        if self.op.act == "hsigmoid":
            return c / top
        return x * c / top if self.op.act == "hswish" else c
