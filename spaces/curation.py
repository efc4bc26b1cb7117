"""Curation: from a raw description of a MobileNetV2-style space to the curated, accelerator-aware one.

A raw space (:class:`RawSpace`) says what a designer would consider: per stage a stride, a reference
width and depth, a width range at multiplier 1.0 and depth options; global channel multipliers, input
resolutions, block types, kernels and expansion ratios.  :func:`curate` turns it into the few choices an
accelerator with parallelism factor ``P`` runs well (:class:`Curated`):

- widths: for every multiplier ``m`` and stage, ``max_options`` points spread geometrically over
  ``[lo * m, hi * m]``, each snapped to a multiple of ``P`` with the reference rounding
  (:func:`make_divisible`), deduplicated, and thinned so consecutive options differ by at least
  ``min_ratio``; the stem is ``make_divisible(stem * m, P)`` and the head
  ``make_divisible(head * max(1, m), P)`` (MobileNetV2's rule: the head never shrinks);
- depths: at most ``max_options`` per stage, spread evenly over the raw options (ends kept);
- resolutions: snapped to multiples of ``resolution_step`` (the network's total stride, 32), at most
  ``max_options`` spread evenly;
- block types, kernels and expansions: deduplicated and validated.

The curated choices define a set of architectures whose exact size :attr:`Curated.size` counts (distinct
networks, so overlapping width options of different multipliers are counted once).

Example
-------
>>> cur = curate(MOBILENETV2_RAW, 16)
>>> cur.widths[cur.multipliers.index(1.0)]
((16, 32), (16, 32, 48), (32, 48, 64), (48, 80, 128), (64, 96, 160), (128, 176, 256), (256, 336, 448))
>>> curate(MOBILENETV2_RAW, 32).widths[cur.multipliers.index(1.0)][3]
(64, 96, 128)
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import prod

import numpy as np

from zeroshot.checks import check_int
from zeroshot.errors import InputError

__all__ = ["BLOCK_TYPES", "Curated", "MOBILENETV2_RAW", "RawSpace", "RawStage", "curate", "make_divisible"]

BLOCK_TYPES = ("i", "f")        # i: inverted bottleneck (IBN), f: fused IBN; the index is the code value


def make_divisible(value: float, divisor: int) -> int:
    """Nearest multiple of ``divisor`` (at least ``divisor``), one more step when that lost over 10%.

    >>> make_divisible(24, 16), make_divisible(22.6, 16), make_divisible(1280 * 1.25, 32)
    (32, 32, 1600)
    """
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * value else out


@dataclass(frozen=True)
class RawStage:
    """One stage of a raw space: stride of its first block, reference width and depth (the reference
    network's, used for slot capacity), width range ``(lo, hi)`` at multiplier 1.0, depth options."""

    stride: int
    base_width: int
    widths: tuple[float, float]
    base_depth: int
    depths: tuple[int, ...]


@dataclass(frozen=True)
class RawSpace:
    """What a designer considers before curation (see the module docstring for how it is curated)."""

    stem: int
    head: int
    stages: tuple[RawStage, ...]
    multipliers: tuple[float, ...]
    resolutions: tuple[int, ...]
    blocks: tuple[str, ...] = BLOCK_TYPES
    kernels: tuple[int, ...] = (3, 5)
    expansions: tuple[int, ...] = (1, 3, 6)
    max_options: int = 3
    min_ratio: float = 1.25
    resolution_step: int = 32


#: The default raw space: MobileNetV2's stages (strides 1,2,2,2,1,2,1; widths 16..320; depths
#: 1,2,3,4,3,3,1) with width ranges around MobileNetV2's, depth options around its depths, the usual
#: channel multipliers and resolutions; IBN or fused blocks, kernels 3/5, expansions 1/3/6 (1 and 6 are
#: MobileNetV2's; 1 also gives the plain-conv and depthwise-separable blocks accelerators like early on).
MOBILENETV2_RAW = RawSpace(
    stem=32,
    head=1280,
    stages=(
        RawStage(1, 16, (16, 32), 1, (1,)),
        RawStage(2, 24, (16, 48), 2, (1, 2, 3)),
        RawStage(2, 32, (24, 64), 3, (2, 3, 4)),
        RawStage(2, 64, (48, 128), 4, (2, 3, 4)),
        RawStage(1, 96, (64, 160), 3, (2, 3, 4)),
        RawStage(2, 160, (128, 256), 3, (2, 3, 4)),
        RawStage(1, 320, (256, 448), 1, (1,)),
    ),
    multipliers=(0.5, 0.75, 1.0, 1.25),
    resolutions=(160, 192, 224),
)


@dataclass(frozen=True)
class Curated:
    """The curated choices.  Per-multiplier tables are indexed like :attr:`multipliers`; ``widths[m][s]``
    are stage ``s``'s width options under multiplier ``m``; ``slots[s]`` is how many blocks stage ``s``
    can hold in a code vector (the largest curated or reference depth)."""

    parallelism: int
    strides: tuple[int, ...]
    slots: tuple[int, ...]
    resolutions: tuple[int, ...]
    blocks: tuple[int, ...]
    kernels: tuple[int, ...]
    expansions: tuple[int, ...]
    depths: tuple[tuple[int, ...], ...]
    multipliers: tuple[float, ...]
    stem: tuple[int, ...]
    head: tuple[int, ...]
    widths: tuple[tuple[tuple[int, ...], ...], ...]

    @property
    def channel_plans(self) -> int:
        """Distinct (stem, stage widths, head) tuples: the union over multipliers of their products,
        counted exactly by inclusion-exclusion."""
        per_m = [[{self.stem[m]}, *map(set, self.widths[m]), {self.head[m]}] for m in range(len(self.multipliers))]
        total = 0
        for r in range(1, len(per_m) + 1):
            for subset in combinations(per_m, r):
                total += (-1) ** (r + 1) * prod(len(set.intersection(*col)) for col in zip(*subset))
        return total

    @property
    def size(self) -> int:
        """Exact number of distinct curated architectures."""
        per_block = len(self.blocks) * len(self.kernels) * len(self.expansions)
        stages = prod(sum(per_block ** d for d in ds) for ds in self.depths)
        return len(self.resolutions) * self.channel_plans * stages


def _spread(options, n: int) -> tuple:
    """At most ``n`` of the sorted distinct ``options``, evenly spread, the ends kept."""
    values = sorted(set(options))
    if len(values) <= n:
        return tuple(values)
    picks = np.unique(np.round(np.linspace(0, len(values) - 1, n)).astype(int))
    return tuple(values[i] for i in picks)


def _width_options(lo: float, hi: float, p: int, n: int, min_ratio: float) -> tuple[int, ...]:
    points = np.geomspace(lo, hi, n) if n > 1 else [lo]
    kept: list[int] = []
    for v in sorted({make_divisible(float(x), p) for x in points}):
        if not kept or v >= kept[-1] * min_ratio:
            kept.append(v)
    return tuple(kept)


def _positive_ints(name: str, values, odd: bool = False) -> tuple[int, ...]:
    out = tuple(sorted(set(values)))
    if not out or any(int(v) != v or v < 1 or (odd and v % 2 == 0) for v in out):
        kind = "positive odd integers" if odd else "positive integers"
        raise InputError(f"raw space {name} must be a non-empty list of {kind}, got {values}")
    return tuple(int(v) for v in out)


def curate(raw: RawSpace, parallelism: int = 16) -> Curated:
    """The curated choices of ``raw`` for an accelerator of parallelism factor ``parallelism`` (P)."""
    p = check_int("parallelism", parallelism, 1, "a positive integer (for example 8, 16 or 32)")
    unknown = sorted(set(raw.blocks) - set(BLOCK_TYPES))
    if unknown or not raw.blocks:
        raise InputError(f"raw space blocks must be among {', '.join(BLOCK_TYPES)}, got {raw.blocks}")
    if not raw.multipliers or min(raw.multipliers) <= 0:
        raise InputError(f"raw space multipliers must be positive, got {raw.multipliers}")
    if raw.max_options < 1 or raw.min_ratio < 1:
        raise InputError(f"max_options must be >= 1 and min_ratio >= 1, got {raw.max_options}, {raw.min_ratio}")
    for i, st in enumerate(raw.stages, 1):
        if st.stride not in (1, 2) or not 0 < st.widths[0] <= st.widths[1] or st.base_depth < 1:
            raise InputError(f"raw stage {i}: stride must be 1 or 2, widths a range 0 < lo <= hi and base "
                             f"depth >= 1, got {st}")
    multipliers = tuple(sorted(set(float(m) for m in raw.multipliers)))
    depths = tuple(_spread(_positive_ints(f"stage {i} depths", st.depths), raw.max_options)
                   for i, st in enumerate(raw.stages, 1))
    step = raw.resolution_step
    resolutions = _spread({make_divisible(r, step) for r in _positive_ints("resolutions", raw.resolutions)},
                          raw.max_options)
    return Curated(
        parallelism=int(p),
        strides=tuple(st.stride for st in raw.stages),
        slots=tuple(max(st.base_depth, max(ds)) for st, ds in zip(raw.stages, depths)),
        resolutions=resolutions,
        blocks=tuple(BLOCK_TYPES.index(b) for b in sorted(set(raw.blocks), key=BLOCK_TYPES.index)),
        kernels=_positive_ints("kernels", raw.kernels, odd=True),
        expansions=_positive_ints("expansions", raw.expansions),
        depths=depths,
        multipliers=multipliers,
        stem=tuple(make_divisible(raw.stem * m, p) for m in multipliers),
        head=tuple(make_divisible(raw.head * max(1.0, m), p) for m in multipliers),
        widths=tuple(tuple(_width_options(st.widths[0] * m, st.widths[1] * m, p, raw.max_options, raw.min_ratio)
                           for st in raw.stages) for m in multipliers),
    )
