"""Weight gradients of conv, transposed-conv and linear layers rebuilt from a layer's input and output
gradient: summed over a batch (zico's half batches) or as the Gram matrix of the per-sample gradients (ntk)."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from zeroshot.spaces.ir import CONV, DECONV, LINEAR, Op

__all__ = ["SHIFT_PIXELS"]

SHIFT_PIXELS = 64      # per-sample conv gradients: one product per kernel offset up to this many pixels


def _window(op: Op, a: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """A conv's input and the geometry arguments of torch's convolution functions: the op's padding
    when symmetric, else ``a`` zero-padded (top, bottom, left, right) and no padding."""
    t, b, l, r = op.padding
    geometry = dict(stride=op.strides, dilation=op.dilation, groups=op.groups)
    if (t, l) == (b, r):
        return a, dict(geometry, padding=(t, l))
    return F.pad(a, (l, r, t, b)), dict(geometry, padding=0)


def _conv_weight(op: Op, a: torch.Tensor, d: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """Weight gradient of conv / transposed conv ``op`` from its input ``a`` and output gradient ``d``
    (the batch folded into ``groups`` more groups for per-sample gradients: the grouped-convolution
    trick).  A transposed conv is the adjoint of the conv with the same weight: its weight gradient is
    that conv's with input and output gradient exchanged."""
    kh, kw = op.kernel
    if op.kind == DECONV:
        shape = (a.shape[1], op.c_out // op.groups, kh, kw)
        _, geometry = _window(op, d)
        return torch.nn.grad.conv2d_weight(d, shape, a, **dict(geometry, groups=op.groups * groups))
    a, geometry = _window(op, a)
    shape = (d.shape[1], op.c_in // op.groups, kh, kw)
    return torch.nn.grad.conv2d_weight(a, shape, d, **dict(geometry, groups=op.groups * groups))


def _weight_grad(op: Op, a: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Gradient of a conv / transposed conv / linear weight summed over the batch, from its input ``a``
    and output gradient ``d``."""
    if op.kind == LINEAR:
        return d.reshape(d.shape[0], -1).T @ a.reshape(a.shape[0], -1)
    return _conv_weight(op, a, d)


def _per_sample_gram(op: Op, a: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``J J^T`` for the per-sample gradients ``J`` (rows) of a conv / linear weight, from its input ``a``
    and output gradient ``d`` (float32, ``(B, B)``).  A linear layer's in closed form, ``(d d^T) * (a a^T)``;
    an ungrouped conv with at most :data:`SHIFT_PIXELS` output pixels: one batched product per kernel offset
    of the padded channels-last input (:func:`_shift_gram`); other convs and transposed convs: the
    grouped-convolution trick (batch as groups)."""
    b = a.shape[0]
    if op.kind == LINEAR:
        a, d = a.reshape(b, -1), d.reshape(b, -1)
        return (d @ d.T) * (a @ a.T)
    if op.kind == CONV and op.groups == 1 and op.h_out * op.w_out <= SHIFT_PIXELS:
        return _shift_gram(op, a, d)
    per = _conv_weight(op, a.reshape(1, -1, *a.shape[2:]), d.reshape(1, -1, *d.shape[2:]), b).reshape(b, -1)
    return per @ per.T


def _shift_gram(op: Op, a: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """:func:`_per_sample_gram` of an ungrouped conv: per kernel offset ``(u, v)``, the output gradient
    times the input pixels that offset reads (strided, dilated); the rows' entries then come in
    (offset, c_out, c_in) order, which the Gram does not see."""
    b = a.shape[0]
    t, bottom, l, r = op.padding
    (kh, kw), (sh, sw), dil = op.kernel, op.strides, op.dilation
    ap = F.pad(a, (l, r, t, bottom)).permute(0, 2, 3, 1).contiguous()          # (B, H + t + b, W + l + r, C_in)
    df = d.flatten(2)                                                          # (B, C_out, pixels)
    per = a.new_empty(kh * kw, b, op.c_out, op.c_in)
    for u in range(kh):
        for v in range(kw):
            patch = ap[:, u * dil:u * dil + sh * (op.h_out - 1) + 1:sh, v * dil:v * dil + sw * (op.w_out - 1) + 1:sw]
            torch.bmm(df, patch.reshape(b, -1, op.c_in), out=per[u * kw + v])
    per = per.view(kh * kw, b, -1)
    return torch.bmm(per, per.transpose(1, 2)).sum(0)
