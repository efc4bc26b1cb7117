"""MeCo: smallest eigenvalues of channel correlation matrices, over one Gaussian image through the
default-init network (meco and meco_full, a no-grad pass of their own) or over the batch pass's positions
(meco_batch's layer terms, :func:`meco_layer`)."""
from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from zeroshot.spaces.ir import LINEAR, Arch

from .compiled import eigvalsh
from .net import _gen
from .structure import live_ops

__all__ = ["MECO_CHANNELS", "MECO_POSITIONS", "meco", "meco_layer", "meco_leaves"]

MECO_CHANNELS = 8       # meco_batch: channels per layer (MeCo_opt's n = 8), evenly spaced
MECO_POSITIONS = 4096   # meco_batch: at most this many positions (image x pixel) per layer, evenly strided


def meco_leaves(arch: Arch, net: nn.Module) -> set[int]:
    """The tensors meco and meco_batch read: the outputs of the live conv / BN / activation / pool ops."""
    live = live_ops(arch)
    return {i + 1 for i, layer in enumerate(net.layers) if live[i] and not isinstance(layer, nn.Identity)
            and arch.ops[i].kind != LINEAR}


def _correlation(fea: np.ndarray) -> np.ndarray:
    """The correlation matrix of the rows of ``fea``, NaN / inf entries (a constant row, a single column)
    set to 0, without numpy's warnings about them."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        corr = np.atleast_2d(np.corrcoef(fea))
    corr[~np.isfinite(corr)] = 0.0
    return corr


def meco_layer(val: torch.Tensor, weighted: bool = True) -> float:
    """One layer's term of meco_batch: ``(C / n) * lambda_min`` of the correlation matrix of ``n = min(C, 8)``
    evenly spaced channels of ``val`` (``(B, C, H, W)``), each channel's values over the ``B * H * W``
    positions of the batch (evenly strided down to at most :data:`MECO_POSITIONS`); NaN / inf entries of
    the correlation (a constant channel) set to 0, as meco does.  The ``C / n`` weight is MeCo_opt's: the
    sampled channels stand for all ``C``; ``weighted=False`` drops it (meco_full's terms, at most 1 each, as
    meco's).  With fewer positions than sampled channels the term is 0.

    >>> abs(meco_layer(torch.eye(4).reshape(4, 4, 1, 1))) < 1e-9      # 4 channels over 4 positions: rank 3
    True
    >>> x = torch.randn(16, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> 0.9 < meco_layer(x) <= 1.0            # two independent channels: lambda_min close to 1, weight 1
    True
    """
    c = val.shape[1]
    idx = torch.linspace(0, c - 1, min(c, MECO_CHANNELS)).round().long()
    fea = val.index_select(1, idx).transpose(0, 1).reshape(len(idx), -1)
    fea = fea[:, ::-(-fea.shape[1] // MECO_POSITIONS)].double().numpy()
    corr = _correlation(fea)
    return (c / len(idx) if weighted else 1.0) * float(eigvalsh(corr)[0])


def meco(arch: Arch, net: nn.Module, seed: int, full: bool = True) -> tuple[float, float]:
    """MeCo: sum over the outputs of live conv / BN / activation / pool ops, for one Gaussian image, of
    the smallest eigenvalue of the channel correlation matrix (NaN / inf entries set to 0; 0 when the
    layer has at least as many channels as pixels); ``net``: ``arch`` built with the default init.

    Returns ``(meco, meco_full)``: meco_full adds, for each layer where meco's term is 0 (``C >= H*W``),
    the unweighted :func:`meco_layer` of the same image (MeCo_opt's 8 sampled channels), so that the deep,
    narrow-map layers count too (computed only with ``full``; otherwise meco_full is returned as NaN).  A BN
    that sees one value per channel (a 1x1 map of the one image: small inputs, heads after a global pool)
    has no batch statistics: it normalises with its initial running ones (mean 0, variance 1), as
    :func:`_without_batch_statistics` sets."""
    leaf = meco_leaves(arch, net)
    total = [0.0, 0.0]

    def tap(t, val):
        if t not in leaf:
            return
        if val.shape[1] < val[0].numel() // val.shape[1]:
            fea = val[0].detach().double().reshape(val.shape[1], -1).numpy()
            total[0] += float(eigvalsh(_correlation(fea))[0])
        elif full:
            # with C >= H*W channels the correlation matrix has rank <= H*W - 1 < C: its smallest
            # eigenvalue is exactly 0, no eigen-solver needed (deep layers of wide networks)
            total[1] += meco_layer(val[:1].detach(), weighted=False)

    net.tap = tap
    try:
        with torch.no_grad(), _without_batch_statistics(arch, net):
            net(torch.randn(1, *arch.input_shape, generator=_gen(seed, "meco")))
    finally:
        net.tap = None
    return total[0], total[0] + total[1] if full else float("nan")


@contextmanager
def _without_batch_statistics(arch: Arch, net: nn.Module):
    """Within the block, the BN layers of ``net`` over 1x1 maps (one value per channel in a batch of one,
    where train mode has no statistics to take) run in eval mode with their initial running statistics
    (mean 0, variance 1); their mode and statistics are restored on exit.

    >>> from zeroshot.proxies.net import network
    >>> from zeroshot.spaces.ir import Graph
    >>> g = Graph(4, 1, 1); arch = g.finish(g.bn(0))
    >>> net = network(arch, 0); x = torch.randn(1, 4, 1, 1)
    >>> with _without_batch_statistics(arch, net):
    ...     y = net(x)
    >>> bool(torch.allclose(y, x, atol=1e-4)), net.layers[0].training
    (True, True)
    """
    norms = [m for m, op in zip(net.layers, arch.ops) if op.h_out * op.w_out == 1 and isinstance(m, nn.BatchNorm2d)]
    saved = [(m.training, m.running_mean, m.running_var) for m in norms]
    for m in norms:
        m.eval()
        m.running_mean, m.running_var = torch.zeros_like(m.running_mean), torch.ones_like(m.running_var)
    try:
        yield
    finally:
        for m, (mode, mean, var) in zip(norms, saved):
            m.train(mode)
            m.running_mean, m.running_var = mean, var
