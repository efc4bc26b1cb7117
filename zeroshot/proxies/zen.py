"""Zen-score, from passes of its own: the network re-initialised with N(0, 1) weights, two no-grad
forwards of a Gaussian batch of :data:`ZEN_BATCH` (``x``, ``x + 0.01 e``)."""
from __future__ import annotations

import math

import torch
from torch import nn

from zeroshot.spaces.ir import BN, GAP, Arch

from .net import _gen
from .structure import init_network, live_ops

__all__ = ["ZEN_BATCH", "ZEN_EPS", "zen"]

ZEN_EPS = 0.01
ZEN_BATCH = 16          # Zen-NAS's default batch size


def zen(arch: Arch, net: nn.Module, seed: int, batch: int = ZEN_BATCH) -> float:
    """Zen-score: ``log(mean_b |f(x) - f(x + 0.01 e)|_1) + sum_BN log sqrt(mean batch variance)`` with
    N(0, 1) weights and a Gaussian batch ``x`` of 16; ``f``: the features before the last global pool.
    ``net`` (a built ``arch``) is re-initialised in place."""
    init_network(net, arch, seed, "gaussian")
    live = live_ops(arch)
    gaps = [i for i, op in enumerate(arch.ops) if op.kind == GAP]
    feat_t = arch.ops[gaps[-1]].inputs[0] if gaps else arch.outputs[0]
    bns = [net.layers[i] for i, op in enumerate(arch.ops) if live[i] and op.kind == BN]
    for bn in bns:
        bn.momentum = 1.0                  # running variance := the batch's (unbiased) variance
    feats = []

    def tap(t, val):
        if t == feat_t:
            feats.append(val)

    g = _gen(seed, "zen")
    x = torch.randn(batch, *arch.input_shape, generator=g)
    x2 = x + ZEN_EPS * torch.randn(batch, *arch.input_shape, generator=g)
    net.tap = tap
    with torch.no_grad():
        net(x)
        variances = [float(bn.running_var.double().mean()) for bn in bns]
        net(x2)
    net.tap = None
    log_bn = sum(0.5 * math.log(v) if v > 0 else float("-inf") for v in variances)
    diff = float((feats[0].double() - feats[1].double()).abs().flatten(1).sum(1).mean())
    return (math.log(diff) if diff > 0 else float("-inf")) + log_bn
