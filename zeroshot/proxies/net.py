"""What every network proxy starts from: the network built from the seed (default init), named random
streams of the seed, and what proxies read off the network: its scored weights, logits and loss gradients."""
from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from zeroshot.spaces.builder import build
from zeroshot.spaces.ir import CONV, DECONV, LINEAR, Arch

from .structure import init_network, weighted_layer

__all__ = ["network", "stream_seed"]


def stream_seed(seed: int, stream: str) -> int:
    """Seed of one named random stream (inputs, crops, labels) derived from the user's seed."""
    return int.from_bytes(hashlib.blake2b(f"{seed}/{stream}".encode(), digest_size=7).digest(), "little")


def _gen(seed: int, stream: str) -> torch.Generator:
    return torch.Generator().manual_seed(stream_seed(seed, stream))


def network(arch: Arch, seed: int) -> nn.Module:
    """``arch`` built with the default init from ``seed`` (canonical op seeds), in train mode."""
    net = build(arch)
    init_network(net, arch, seed)
    return net.train()


def _weight_ops(arch: Arch, live: np.ndarray) -> list[int]:
    """The live convs, transposed convs and linear layers: the ops whose weights proxies score."""
    return [i for i, op in enumerate(arch.ops) if live[i] and op.kind in (CONV, DECONV, LINEAR)]


def _weights(net: nn.Module, ops: list[int]) -> list[torch.Tensor]:
    """The weight tensors of ``net``'s ops ``ops`` (behind an asymmetric op's padding too)."""
    return [weighted_layer(net.layers[i]).weight for i in ops]


def _logits(out):
    """A classifier's output as (N, classes): a network ending in a global pool without a linear layer
    (a trailing flatten) builds to (N, C, 1, 1); other outputs (a tuple of a detector's) as they are."""
    return out.flatten(1) if torch.is_tensor(out) and out.dim() == 4 and out.shape[2:] == (1, 1) else out


def _loss_grad(logits, y, weights, **kw) -> list[torch.Tensor]:
    """Gradients of the cross-entropy loss wrt ``weights`` (zeros for a weight it does not reach)."""
    if not weights:
        return []
    g = torch.autograd.grad(F.cross_entropy(logits, y), weights, allow_unused=True, **kw)
    return [torch.zeros_like(w) if gi is None else gi for w, gi in zip(weights, g)]
