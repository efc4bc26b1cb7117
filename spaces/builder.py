"""Build a runnable ``torch.nn.Module`` from any :class:`~zeroshot.spaces.ir.Arch`.

One generic graph executor serves every space, so the analytic counts and the torch module describe the
same network by construction (the tests still check it).

Example
-------
>>> import torch
>>> from zeroshot.spaces import get_space
>>> space = get_space("nb201")
>>> net = build(space.to_ir(space.sample(1, seed=0)[0]))
>>> net(torch.zeros(2, 3, 32, 32)).shape
torch.Size([2, 10])
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .ir import (ACT, ADD, AVGPOOL, BN, CONCAT, CONV, DECONV, GAP, LINEAR, MAXPOOL, MUL, SHUFFLE, UPSAMPLE,
                 ZERO, Arch, Op)

__all__ = ["AvgPool", "GraphNet", "HSwish", "build", "count_parameters"]


class HSwish(nn.Module):
    """Hard swish, ``x * relu6(x + 3) / 6``."""

    def forward(self, x):
        return x * F.relu6(x + 3.0) / 6.0


_ACT_MODULES = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": HSwish, "sigmoid": nn.Sigmoid,
                "hsigmoid": nn.Hardsigmoid, "silu": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class AvgPool(nn.Module):
    """``nn.AvgPool2d`` computed as a depthwise convolution with a kernel of ones divided by the window
    counts: the same values (to float rounding), about 8x faster forward and backward on CPU, where torch's
    NCHW ``avg_pool2d`` kernel is not vectorised (NB201's 3x3 pool on 64 x 16 x 32 x 32: 6.5 ms against
    0.6 ms forward).  The kernel is a non-persistent buffer: state dicts are those of ``nn.AvgPool2d``."""

    def __init__(self, channels: int, k: int, stride: int, pad: int, count_include_pad: bool):
        super().__init__()
        self.k, self.stride, self.pad, self.count_include_pad = k, stride, pad, count_include_pad
        self.register_buffer("ones", torch.ones(channels, 1, k, k), persistent=False)
        self._counts: dict = {}

    def _divisor(self, x: torch.Tensor, ones: torch.Tensor):
        if self.count_include_pad or not self.pad:
            return self.k * self.k
        key = (x.shape[2], x.shape[3], x.dtype, x.device)
        if key not in self._counts:
            self._counts[key] = F.conv2d(x.new_ones(1, 1, *key[:2]), ones[:1], stride=self.stride,
                                         padding=self.pad)
        return self._counts[key]

    def forward(self, x):
        ones = self.ones.to(x)              # any input dtype, as nn.AvgPool2d (no copy when it matches)
        s = F.conv2d(x, ones, stride=self.stride, padding=self.pad, groups=x.shape[1])
        return s / self._divisor(x, ones)


def _padded(op: Op, layer: nn.Module, value: float = 0.0) -> nn.Module:
    """``layer`` (built without padding) behind the asymmetric padding of ``op``."""
    t, b, l, r = op.padding
    return nn.Sequential(nn.ConstantPad2d((l, r, t, b), value), layer)


def _symmetric(op: Op) -> bool:
    t, b, l, r = op.padding
    return t == b and l == r


def _window_module(op: Op) -> nn.Module:
    """Conv or pool of any geometry (non-square kernel or stride, dilation, asymmetric padding)."""
    t, _, l, _ = op.padding if _symmetric(op) else (0,) * 4
    geometry = dict(kernel_size=op.kernel, stride=op.strides, padding=(t, l), dilation=op.dilation)
    if op.kind == CONV:
        layer = nn.Conv2d(op.c_in, op.c_out, groups=op.groups, bias=bool(op.flag), **geometry)
    elif op.kind == MAXPOOL:
        layer = nn.MaxPool2d(**geometry)
    else:
        geometry.pop("dilation")
        layer = nn.AvgPool2d(count_include_pad=bool(op.flag), **geometry)
    return layer if _symmetric(op) else _padded(op, layer, float("-inf") if op.kind == MAXPOOL else 0.0)


def _deconv(op: Op) -> nn.ConvTranspose2d:
    """The transposed conv of ``op``, its output padding recovered from the output size."""
    t, _, l, _ = op.padding
    return nn.ConvTranspose2d(op.c_in, op.c_out, op.kernel, op.strides, (t, l), op.output_padding, op.groups,
                              bool(op.flag), op.dilation)


def _module(op: Op) -> nn.Module | None:
    if op.kind in (CONV, AVGPOOL, MAXPOOL) and (op.kw or op.stride_w or op.pads or op.dilation != 1):
        return _window_module(op)
    if op.kind == CONV:
        return nn.Conv2d(op.c_in, op.c_out, op.k, op.stride, op.pad, groups=op.groups, bias=bool(op.flag))
    if op.kind == DECONV:
        return _deconv(op)
    if op.kind == BN:
        return nn.BatchNorm2d(op.c_out, affine=not op.flag)
    if op.kind == ACT:
        return _ACT_MODULES[op.act]()
    if op.kind == LINEAR:
        return nn.Linear(op.c_in, op.c_out, bias=bool(op.flag))
    if op.kind == AVGPOOL:
        return AvgPool(op.c_in, op.k, op.stride, op.pad, count_include_pad=bool(op.flag))
    if op.kind == MAXPOOL:
        return nn.MaxPool2d(op.k, op.stride, op.pad)
    return None


class GraphNet(nn.Module):
    """Executes the ops of an :class:`Arch` in order; ``layers[i]`` is op ``i``'s module (or Identity).

    Returns the output tensor, or a tuple when the architecture has several outputs (detection).
    ``tap``: optional callable ``tap(t, tensor)`` called with every tensor id and value as it is computed
    (tensor 0 is the input; proxies observe activations through it).  A tensor is dropped after its last
    reader, as a runtime frees it (keeping every tensor alive would add allocation costs to timings).
    """

    def __init__(self, arch: Arch):
        super().__init__()
        self.arch = arch
        self.layers = nn.ModuleList(_module(op) or nn.Identity() for op in arch.ops)
        self.tap = None
        last = {t: i for i, op in enumerate(arch.ops) for t in op.inputs}
        self._dead = [tuple(t for t in set(op.inputs) if last[t] == i and t not in arch.outputs)
                      for i, op in enumerate(arch.ops)]

    def forward(self, x: torch.Tensor):
        ts = [x]
        tap = self.tap
        if tap is not None:
            tap(0, x)
        for op, layer, dead in zip(self.arch.ops, self.layers, self._dead):
            k = op.kind
            if k in (CONV, BN, ACT, AVGPOOL, MAXPOOL, DECONV):
                y = layer(ts[op.inputs[0]])
            elif k == ADD:
                y = ts[op.inputs[0]]
                for t in op.inputs[1:]:
                    y = y + ts[t]
            elif k == MUL:
                y = ts[op.inputs[0]] * ts[op.inputs[1]]
            elif k == GAP:
                y = ts[op.inputs[0]].mean((2, 3), keepdim=True)
            elif k == LINEAR:
                y = layer(ts[op.inputs[0]].flatten(1))[:, :, None, None]
            elif k == ZERO:
                y = ts[op.inputs[0]] * 0.0
            elif k == UPSAMPLE and op.mode == "nearest":
                y = F.interpolate(ts[op.inputs[0]], size=(op.h_out, op.w_out), mode="nearest")
            elif k == UPSAMPLE:
                y = F.interpolate(ts[op.inputs[0]], size=(op.h_out, op.w_out), mode="bilinear",
                                  align_corners=False)
            elif k == CONCAT:
                y = torch.cat([ts[t] for t in op.inputs], dim=1)
            elif k == SHUFFLE:
                x = ts[op.inputs[0]]
                n, c, h, w = x.shape
                y = x.view(n, op.groups, c // op.groups, h, w).transpose(1, 2).reshape(n, c, h, w)
            else:  # pragma: no cover - the IR constructor never makes other kinds
                raise ValueError(f"op kind {k} has no torch implementation")
            ts.append(y)
            if tap is not None:
                tap(len(ts) - 1, y)
            for t in dead:
                ts[t] = None
        outs = [ts[t].flatten(1) if self.arch.ops[t - 1].kind == LINEAR else ts[t]
                for t in self.arch.outputs]
        return outs[0] if len(outs) == 1 else tuple(outs)


def build(arch: Arch) -> GraphNet:
    """The torch module of ``arch`` (PyTorch default initialisation, train mode)."""
    return GraphNet(arch)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of a torch module (the reference the analytic counts must equal)."""
    return sum(p.numel() for p in module.parameters())
