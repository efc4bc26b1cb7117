"""linear_regions (TE-NAS), from a pass of its own: distinct activation patterns of a thin copy of the
network (channels / :data:`LR_DIVISOR`) over :data:`LR_SAMPLES` random small crops of the batch, no grad."""
from __future__ import annotations

import numpy as np
import torch

from zeroshot.spaces.ir import ACT, Arch

from .compiled import count_distinct_rows, pack_signs
from .net import _gen, network
from .structure import live_ops, thin_arch

__all__ = ["LR_DIVISOR", "LR_SAMPLES", "linear_regions"]

LR_SAMPLES = 1000
LR_DIVISOR = 8


def linear_regions(arch: Arch, x: torch.Tensor, seed: int) -> float:
    """Distinct activation patterns of a thin copy (channels / 8) over 1,000 random crops of ``x`` (the
    smallest crop of side ``H / 8``, ``H / 4``, ... that every shape of the thin copy fits)."""
    h = arch.input_shape[1]
    thin = None
    for size in sorted({max(1, h // d) for d in (8, 4, 2, 1)}):
        try:
            thin = thin_arch(arch, LR_DIVISOR, size)
            break
        except ValueError:
            continue
    if thin is None:
        return float("nan")
    g = _gen(seed, "linear_regions")
    n, (_, hh, ww) = LR_SAMPLES, x.shape[1:]
    idx = torch.randint(x.shape[0], (n,), generator=g)
    i0 = torch.randint(hh - size + 1, (n,), generator=g)
    j0 = torch.randint(ww - size + 1, (n,), generator=g)
    crops = torch.stack([x[k, :, a:a + size, c:c + size] for k, a, c in zip(idx.tolist(), i0.tolist(), j0.tolist())])
    net = network(thin, seed)
    live = live_ops(thin)
    acts = {op.inputs[0] for i, op in enumerate(thin.ops) if live[i] and op.kind == ACT}
    blocks = []

    def tap(t, val):
        if t in acts:
            blocks.append(pack_signs(val.reshape(n, -1).numpy()))

    net.tap = tap
    with torch.no_grad():
        net(crops)
    return float(count_distinct_rows(np.concatenate(blocks, axis=1))) if blocks else 1.0
