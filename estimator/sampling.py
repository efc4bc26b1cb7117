"""Kernel configurations to measure: drawn from the layers of search spaces, refined where models err.

:class:`KernelPool` decomposes architectures sampled from one or more spaces and keeps their distinct
kernel rows with how often each occurs; :meth:`KernelPool.draw` picks distinct configurations in
proportion to that frequency.  :func:`neighbours` is nn-Meter's refinement step: around a configuration
a predictor gets wrong it keeps the input size, kernel size and stride and redraws the channels in
``[0.5 C, 1.2 C)``.  :func:`kernel_arch` turns a configuration into a one-kernel network; every
configuration is canonicalised through it and :func:`zeroshot.estimator.kernel_table.decompose`, so its derived
features (MACs, bytes) always match what decomposing a real architecture gives.

Example
-------
>>> from zeroshot.spaces import get_space
>>> pool = KernelPool.from_spaces([get_space("nb201")], archs_per_space=4, seed=0)
>>> rows = pool.draw(3, np.random.default_rng(0))
>>> len(rows), len(neighbours(rows[0], 2, np.random.default_rng(0)))
(3, 2)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from zeroshot.spaces import ir
from zeroshot.spaces.base import SearchSpace
from zeroshot.spaces.ir import Arch, Graph, to_table

from .kernel_table import DEFAULT_FUSION, KERNEL_FIELDS, KT, decompose

__all__ = ["KernelPool", "canonical", "kernel_arch", "kernel_rows", "neighbours", "row_key"]

#: Kernel types whose input and output channels are one number (redrawn together).
_SAME_CHANNELS = {KT[t] for t in ("dwconv", "bn", "act", "add", "mul", "pool", "gap", "zero", "upsample",
                                  "concat", "shuffle")}


def kernel_rows(kt) -> list[dict]:
    """The rows of a :class:`~zeroshot.estimator.kernel_table.KernelTable` as dicts of Python ints."""
    cols = [kt.cols[f].tolist() for f in KERNEL_FIELDS]
    return [dict(zip(KERNEL_FIELDS, vals)) for vals in zip(*cols)]


def row_key(row: dict) -> tuple:
    """The identity of a kernel row: its :data:`KERNEL_FIELDS` as a tuple of ints."""
    return tuple(int(row[f]) for f in KERNEL_FIELDS)


class KernelPool:
    """Distinct kernel configurations of sampled architectures, with their frequencies."""

    def __init__(self, rows: Sequence[dict], counts: Sequence[int]):
        self.rows = list(rows)
        self.counts = np.asarray(counts, np.float64)

    @classmethod
    def from_archs(cls, archs, fusion=DEFAULT_FUSION) -> "KernelPool":
        counts: dict[tuple, int] = {}
        rows: dict[tuple, dict] = {}
        for row in kernel_rows(decompose(to_table(archs), fusion)):
            key = row_key(row)
            counts[key] = counts.get(key, 0) + 1
            rows.setdefault(key, row)
        return cls([rows[k] for k in counts], list(counts.values()))

    @classmethod
    def from_spaces(cls, spaces: Sequence[SearchSpace], archs_per_space: int = 200, seed: int = 0,
                    fusion=DEFAULT_FUSION) -> "KernelPool":
        """Kernels of ``archs_per_space`` random architectures (``seed``) of each space."""
        archs = []
        for space in spaces:
            n = min(archs_per_space, space.size)
            archs += [space.to_ir(s) for s in space.sample(n, seed=seed)]
        return cls.from_archs(archs, fusion)

    def __len__(self) -> int:
        return len(self.rows)

    def draw(self, n: int, rng: np.random.Generator) -> list[dict]:
        """Up to ``n`` distinct configurations, drawn without replacement in proportion to frequency."""
        if not self.rows:
            return []
        p = self.counts / self.counts.sum()
        pick = rng.choice(len(self.rows), size=min(n, len(self.rows)), replace=False, p=p)
        return [self.rows[i] for i in pick]


def kernel_arch(row: dict) -> Arch:
    """A one-kernel network reproducing a kernel row of :func:`zeroshot.estimator.kernel_table.decompose` (default
    fusion): its head op on an input of the row's shape, then the fused ``bn`` and activation.

    ``row`` maps kernel fields (``type``, ``c_in``, ``h_in`` ...) to integers; the activation code is
    :data:`zeroshot.spaces.ir.ACT_CODES`.

    Rows hold one kernel size and one stride: a conv's kernel width is recovered exactly from its weights
    (``weight_elems``); a conv whose output size the square ``k // 2`` padding does not give gets a width
    stride and a padding (split top / bottom, left / right) that give it; a transposed conv (its MACs per
    input pixel, a larger output) becomes one again.  Dilation is not in a row: a dilated conv's kernel is
    measured as a plain one of its size (the same MACs and weights).

    >>> g = Graph(3, 8, 16)
    >>> row = kernel_rows(decompose(to_table([g.finish(g.conv(0, 4, 1, kw=3, stride_w=2))])))[0]
    >>> op = kernel_arch(row).ops[0]
    >>> op.kernel, op.strides, (op.h_out, op.w_out)
    ((1, 3), (1, 2), (8, 8))
    """
    t, c_in, c_out = int(row["type"]), int(row["c_in"]), int(row["c_out"])
    h, w, k, stride = int(row["h_in"]), int(row["w_in"]), int(row["k"]), int(row["stride"])
    act = _ACT_NAMES[int(row["act"])]
    n_ops = int(row["n_ops"])
    g = Graph(c_in, h, w)
    if t in (KT["conv"], KT["dwconv"], KT["gconv"]):
        x = _conv(g, row)
        if n_ops - bool(act) > 1:
            x = g.bn(x)
    elif t == KT["bn"]:
        x = g.bn(0)
    elif t == KT["act"]:
        return g.finish(g.act(0, act))
    elif t in (KT["add"], KT["mul"]):
        x = g.add([0, 0]) if t == KT["add"] else g.mul(0, 0)
    elif t == KT["pool"]:
        pad = max(0, -(-((int(row["h_out"]) - 1) * stride + k - h) // 2))
        x = g.pool(0, k, stride, pad)
    elif t == KT["gap"]:
        x = g.gap(0)
    elif t == KT["linear"]:
        g = Graph(c_in, 1, 1)
        x = g.linear(0, c_out)
    elif t == KT["zero"]:
        x = g.zero(0)
    elif t == KT["upsample"]:
        x = g.upsample(0, max(1, int(row["h_out"]) // h))
    elif t == KT["concat"]:
        g = Graph(c_in // 2, h, w)
        x = g.concat([0, 0])
    elif t == KT["shuffle"]:
        x = g.shuffle(0, int(row["groups"]))
    else:
        raise ValueError(f"kernel type {t} has no one-kernel network")
    if act and n_ops > 1:
        x = g.act(x, act)
    return g.finish(x)


_ACT_NAMES = {code: name for name, code in ir.ACT_CODES.items()}


def _conv(g: Graph, row: dict) -> int:
    """The conv or transposed conv of a conv kernel row on ``g``'s input (see :func:`kernel_arch`)."""
    c_in, c_out, groups = int(row["c_in"]), int(row["c_out"]), int(row["groups"])
    k, stride = int(row["k"]), int(row["stride"])
    (h, w), (ho, wo) = (int(row["h_in"]), int(row["w_in"])), (int(row["h_out"]), int(row["w_out"]))
    kw = int(row["weight_elems"]) // max(1, c_out * (c_in // groups) * k) or k
    if ho * wo > h * w and int(row["macs"]) == int(row["weight_elems"]) * h * w:
        sw = max(1, round(wo / w))
        (pt, opt), (pl, opl) = _deconv_pad(h, ho, k, stride), _deconv_pad(w, wo, kw, sw)
        return g.deconv(0, c_out, k, stride, groups, pad=pt, kw=kw, stride_w=sw, pad_w=pl, output_padding=(opt, opl))
    square = Graph(c_in, h, w)
    if square.shape(square.conv(0, c_out, k, stride, groups=groups, kw=kw))[1:] == (ho, wo):
        return g.conv(0, c_out, k, stride, groups=groups, kw=kw)
    sw = stride if 0 <= _pad_total(w, wo, kw, stride) < kw + stride else max(1, round(w / wo))
    pads = [max(0, _pad_total(size, out, kk, s)) for size, out, kk, s in ((h, ho, k, stride), (w, wo, kw, sw))]
    return g.conv(0, c_out, k, stride, groups=groups, kw=kw, stride_w=sw,
                  pads=(pads[0] // 2, pads[0] - pads[0] // 2, pads[1] // 2, pads[1] - pads[1] // 2))


def _pad_total(size: int, out: int, k: int, stride: int) -> int:
    """The padding (both sides) a conv of ``k`` and ``stride`` needs to take ``size`` pixels to ``out``."""
    return (out - 1) * stride + k - size


def _deconv_pad(size: int, out: int, k: int, stride: int) -> tuple[int, int]:
    """Padding and output padding of a transposed conv of ``k`` and ``stride`` taking ``size`` to ``out``."""
    pad = max(0, -(-((size - 1) * stride + k - out) // 2))
    return pad, max(0, min(stride - 1, out - ((size - 1) * stride - 2 * pad + k)))


def canonical(row: dict, fusion=DEFAULT_FUSION) -> dict:
    """The row that decomposing the one-kernel network of ``row`` gives (derived features recomputed)."""
    kt = decompose(to_table([kernel_arch(row)]), fusion)
    rows = kernel_rows(kt)
    if len(rows) != 1:
        raise ValueError(f"kernel {row} does not decompose into one kernel under fusion {fusion}")
    return rows[0]


def neighbours(row: dict, n: int, rng: np.random.Generator, low: float = 0.5,
               high: float = 1.2) -> list[dict]:
    """``n`` configurations like ``row`` with channels redrawn in ``[low C, high C)`` (same H, k, stride).

    Grouped convolutions keep their group count (channels rounded to a multiple of it); depthwise and
    channel-preserving kernels redraw one channel count for input and output.
    """
    out = []
    t = int(row["type"])
    for _ in range(n):
        new = dict(row)
        c_in = _redraw(row["c_in"], rng, low, high)
        if t in _SAME_CHANNELS:
            mult = 2 if t in (KT["concat"], KT["shuffle"]) else 1
            mult = max(mult, int(row["groups"])) if t == KT["shuffle"] else mult
            c_in = max(mult, c_in // mult * mult)
            new.update(c_in=c_in, c_out=c_in, groups=c_in if t == KT["dwconv"] else row["groups"])
        else:
            g = int(row["groups"]) if t == KT["gconv"] else 1
            c_out = _redraw(row["c_out"], rng, low, high)
            new.update(c_in=max(g, c_in // g * g), c_out=max(g, c_out // g * g), groups=g)
        out.append(canonical(new))
    return out


def _redraw(c: int, rng: np.random.Generator, low: float, high: float) -> int:
    lo, hi = max(1, int(np.floor(low * c))), max(2, int(np.ceil(high * c)))
    return int(rng.integers(lo, max(hi, lo + 1)))
