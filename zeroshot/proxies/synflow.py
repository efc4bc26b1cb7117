"""SynFlow, from a pass of its own: the float64, BN-free, ``|W|`` network on an all-ones input of batch 1."""
from __future__ import annotations

import math

import torch
from torch import nn

from zeroshot.spaces.builder import build
from zeroshot.spaces.ir import BN, Arch

from .net import _weight_ops, _weights
from .structure import init_network, live_ops

__all__ = ["synflow"]


def synflow(arch: Arch, seed: int) -> float:
    """``log sum |W * dR/dW|`` with ``R`` the sum of the outputs of the float64, BN-free, ``|W|``
    network on an all-ones input (``-inf`` when the sum is 0)."""
    net = build(arch)
    init_network(net, arch, seed)
    for i, op in enumerate(arch.ops):
        if op.kind == BN:
            net.layers[i] = nn.Identity()
    net = net.double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    weights = _weights(net, _weight_ops(arch, live_ops(arch)))
    out = net(torch.ones(1, *arch.input_shape, dtype=torch.float64))
    r = sum(o.sum() for o in out) if isinstance(out, tuple) else out.sum()
    grads = torch.autograd.grad(r, weights, allow_unused=True) if weights else []
    s = sum(float((w.detach() * g).abs().sum()) for w, g in zip(weights, grads) if g is not None)
    return math.log(s) if s > 0 else float("-inf")
