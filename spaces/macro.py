"""Declare your own MobileNet-style macro space as data: no :class:`~zeroshot.spaces.SearchSpace` subclass.

A :class:`MacroSpace` is a chain of :class:`Stage` s between a stem and a head.  A stage has a stride (on
its first block), width options, depth options and the :class:`Block` choices of each of its slots
(``first``: other choices for its first slot).  Blocks:

- :func:`ibn` ``i<k>e<e>``: 1x1 expand conv to ``c_in * e`` + BN + act (dropped when ``e = 1``), KxK
  depthwise conv (the stride) + BN + act, 1x1 project conv + BN;
- :func:`fused` ``f<k>e<e>``: KxK conv to ``c_in * e`` (the stride) + BN + act, 1x1 project conv + BN; with
  ``e = 1`` one KxK conv to ``c_out`` + BN + act;
- both with a residual add when the stride is 1 and ``c_in == c_out``, and with squeeze-excite
  (``se=True``, token suffix ``se``) before the projection: global pool, 1x1 conv (bias) to
  ``make_divisible(hidden / 4, 8)`` + ReLU, 1x1 conv (bias) back + sigmoid, times its input;
- :func:`skip` ``skip``: the identity, or where the shape changes a 1x1 conv (the stride) + BN (+ the
  space's ``skip_act``);
- :func:`custom` ``<name>``: your factory ``build(graph, x, c_out, stride) -> tensor`` adding IR ops to a
  :class:`~zeroshot.spaces.ir.Graph`.

:func:`choices` makes the product of kinds x kernels x expansions x squeeze-excite.  Widths (stages, stem,
head) are snapped to multiples of ``parallelism`` (P) with :func:`~zeroshot.spaces.curation.make_divisible`
(``parallelism=1`` keeps them as declared).  Network: input ``3 x r x r`` (``r`` among ``resolutions``),
stem 3x3 conv (``stem_stride``) + BN + act, the stages, head 1x1 conv + BN + act (``head=None``: none),
global average pool, linear (bias) to ``classes``.  No conv has a bias outside squeeze-excite.

Encoding (one canonical line): ``r<resolution> | <stage 1> | ... | <stage S>``, a stage being ``c<width>``
then one token per block, for example ``r224 | c16 i3e1 | c32 i3e6 f5e3se | c48 i5e6 skip skip``.
Codes (int64): ``[resolution]`` then per stage ``[width, depth, one choice index per slot]`` (-1 past the
depth); the resolution column may hold any input side (the funnel scores at a scaled input).

A ``skip`` in a slot other than a stage's first computes nothing: :meth:`MacroSpace.canonical_codes` moves
such blocks to the end of their stage and shortens it to the smallest depth option that holds the rest
(one representative per network).  The space is enumerable up to 10**8 architectures.  Batch costing splits
networks into segments (stem, blocks, head: :meth:`MacroSpace.segment_keys`) unless a block is custom or has
squeeze-excite (then networks are costed whole).

Example
-------
>>> space = MacroSpace([Stage(1, 16, 1, (ibn(3, 1),)),
...                     Stage(2, (24, 40), (1, 2), choices(("ibn", "fused"), (3, 5), (3, 6)) + (skip(),))],
...                    resolutions=(160, 224), name="tiny")
>>> space.stages[1].widths                  # snapped to multiples of P=16
(32, 48)
>>> space.size                              # 2 resolutions x 2 widths x (9 + 9 * 9) stage-2 blocks
360
>>> arch = space.sample(1, seed=0)[0]
>>> arch
'r224 | c16 i3e1 | c48 i5e3'
>>> space.to_ir(arch).params
1351384
>>> space.parse("r224 | c16 i3e1 | c32 i7e6")            # doctest: +ELLIPSIS
Traceback (most recent call last):
...
zeroshot.errors.EncodingError: stage 2 block 1: 'i7e6' is not a choice there; choose from i3e3, i3e6, ..., skip
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from zeroshot.checks import check_int
from zeroshot.errors import InputError, ParameterError

from . import register_space
from .base import MAX_RESOLUTION, EncodingError, SearchSpace
from .curation import make_divisible
from .ir import ACTIVATIONS, Arch, Graph

__all__ = ["Block", "MacroSpace", "Stage", "choices", "custom", "fused", "ibn", "skip"]

MAX_ENUMERATION = 10**8
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_BUILTIN_TOKEN_RE = re.compile(r"(skip|[if][0-9]+e[0-9]+(se)?)", re.ASCII)


# ---------------------------------------------------------------------------------------------- blocks
@dataclass(frozen=True)
class Block:
    """One block choice: ``kind`` ibn / fused / skip / custom, its kernel ``k``, expansion ``e``,
    squeeze-excite ``se``; a custom block's ``name`` (its token) and ``factory``."""

    kind: str
    k: int = 0
    e: int = 0
    se: bool = False
    name: str = ""
    factory: Callable | None = None

    @property
    def token(self) -> str:
        """The block's word in encodings."""
        if self.kind in ("ibn", "fused"):
            return f"{self.kind[0]}{self.k}e{self.e}{'se' if self.se else ''}"
        return self.name or self.kind

    def build(self, g: Graph, x: int, c_out: int, stride: int, act: str, skip_act: str | None) -> int:
        """Add the block's ops to ``g`` after tensor ``x``; the tensor it outputs."""
        if self.kind == "skip":
            return _shortcut(g, x, c_out, stride, skip_act)
        if self.kind == "custom":
            return _custom(self, g, x, c_out, stride)
        c_in = g.shape(x)[0]
        hidden = c_in * self.e
        if self.kind == "ibn":
            h = x if self.e == 1 else _conv_bn(g, x, hidden, 1, 1, act)
            h = _conv_bn(g, h, hidden, self.k, stride, act, groups=hidden)
        elif self.e == 1:
            h, hidden = _conv_bn(g, x, c_out, self.k, stride, act), 0
        else:
            h = _conv_bn(g, x, hidden, self.k, stride, act)
        if self.se:
            h = _squeeze_excite(g, h)
        y = _conv_bn(g, h, c_out, 1, 1, None) if hidden else h
        return g.add([x, y]) if stride == 1 and c_in == c_out else y


def ibn(k: int = 3, e: int = 6, se: bool = False) -> Block:
    """An inverted bottleneck (MBConv) with kernel ``k``, expansion ``e``, squeeze-excite ``se``."""
    return _ibn_kind("ibn", k, e, se)


def fused(k: int = 3, e: int = 6, se: bool = False) -> Block:
    """A fused inverted bottleneck (the expansion folded into a full KxK conv)."""
    return _ibn_kind("fused", k, e, se)


def skip() -> Block:
    """The identity (a 1x1 conv + BN where the stride or width changes)."""
    return Block("skip")


def custom(name: str, build: Callable[[Graph, int, int, int], int]) -> Block:
    """Your own block: ``build(graph, x, c_out, stride)`` adds its ops after tensor ``x`` and returns the
    tensor it outputs (``c_out`` channels); ``name`` is its token in encodings (a word that is not a
    built-in token)."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or _BUILTIN_TOKEN_RE.fullmatch(name):
        raise ParameterError("name", "a word (letters, digits, _) other than a built-in token like skip or "
                             "i3e6", name)
    if not callable(build):
        raise ParameterError("build", "a callable build(graph, x, c_out, stride) -> tensor",
                             type(build).__name__)
    return Block("custom", name=name, factory=build)


def choices(kinds: Sequence[str] = ("ibn",), kernels: Sequence[int] = (3,), expansions: Sequence[int] = (6,),
            se: Sequence[bool] = (False,)) -> tuple[Block, ...]:
    """Every IBN / fused block of ``kinds`` x ``kernels`` x ``expansions`` x squeeze-excite ``se``.

    >>> [b.token for b in choices(("ibn", "fused"), (3,), (1, 6), (False, True))]
    ['i3e1', 'i3e1se', 'i3e6', 'i3e6se', 'f3e1', 'f3e1se', 'f3e6', 'f3e6se']
    """
    builders = {"ibn": ibn, "fused": fused}
    bad = [k for k in kinds if k not in builders]
    if bad or not kinds:
        raise ParameterError("kinds", "a non-empty sequence of 'ibn' / 'fused'", list(kinds))
    return tuple(builders[kind](k, e, s) for kind in kinds for k in kernels for e in expansions for s in se)


def _ibn_kind(kind: str, k, e, se) -> Block:
    if check_int("k", k, 1, "a positive odd kernel size") % 2 == 0:
        raise ParameterError("k", "a positive odd kernel size", k)
    return Block(kind, int(k), check_int("e", e, 1, "a positive integer expansion"), bool(se))



def _conv_bn(g: Graph, x: int, c_out: int, k: int, stride: int, act: str | None, groups: int = 1) -> int:
    t = g.bn(g.conv(x, c_out, k, stride=stride, groups=groups))
    return g.act(t, act) if act else t


def _shortcut(g: Graph, x: int, c_out: int, stride: int, act: str | None) -> int:
    if stride == 1 and g.shape(x)[0] == c_out:
        return x
    return _conv_bn(g, x, c_out, 1, stride, act)


def _squeeze_excite(g: Graph, x: int) -> int:
    c = g.shape(x)[0]
    s = g.act(g.conv(g.gap(x), make_divisible(c / 4, 8), 1, bias=True), "relu")
    return g.mul(x, g.act(g.conv(s, c, 1, bias=True), "sigmoid"))


def _custom(block: Block, g: Graph, x: int, c_out: int, stride: int) -> int:
    out = block.factory(g, x, c_out, stride)
    if not isinstance(out, (int, np.integer)) or not 0 <= out <= len(g.ops) or g.shape(out)[0] != c_out:
        raise InputError(f"custom block {block.name!r} must return the id of a tensor of its graph with "
                         f"c_out={c_out} channels, got {out!r}")
    return int(out)


# ---------------------------------------------------------------------------------------------- stages
@dataclass(frozen=True)
class Stage:
    """A stage: ``stride`` of its first block, ``widths`` and ``depths`` (an int or options), the block
    ``blocks`` of every slot, and ``first`` those of its first slot (default: ``blocks``)."""

    stride: int
    widths: int | tuple[int, ...]
    depths: int | tuple[int, ...]
    blocks: tuple[Block, ...]
    first: tuple[Block, ...] | None = None

    @property
    def slots(self) -> int:
        return max(_options("depths", self.depths))

    def choices_at(self, slot: int) -> tuple[Block, ...]:
        """The block choices of slot ``slot`` (0: the first)."""
        return tuple(self.first or self.blocks) if slot == 0 else tuple(self.blocks)


def _options(param: str, value) -> tuple[int, ...]:
    """The sorted distinct positive integers of ``value`` (one, or a sequence); ParameterError otherwise."""
    values = (value,) if isinstance(value, (int, np.integer)) else value
    expected = "a positive integer or a non-empty sequence of them"
    if not isinstance(values, (tuple, list, range)) or not values:
        raise ParameterError(param, expected, value)
    return tuple(sorted({check_int(param, v, 1, expected) for v in values}))


def _checked_stage(i: int, st: Stage, p: int) -> Stage:
    """``st`` validated, with sorted depths and widths snapped to multiples of ``p``."""
    if not isinstance(st, Stage):
        raise ParameterError("stages", "a sequence of Stage", type(st).__name__)
    widths, depths = _options(f"stage {i} widths", st.widths), _options(f"stage {i} depths", st.depths)
    if st.stride not in (1, 2, 3, 4):
        raise ParameterError(f"stage {i} stride", "1..4", st.stride)
    for param, blocks in ((f"stage {i} blocks", st.blocks), (f"stage {i} first", st.first or st.blocks)):
        if not isinstance(blocks, (tuple, list)) or not blocks or not all(isinstance(b, Block) for b in blocks):
            raise ParameterError(param, "a non-empty tuple of Block (ibn, fused, skip, custom)", blocks)
        tokens = [b.token for b in blocks]
        if len(set(tokens)) != len(tokens):
            raise ParameterError(param, "distinct block choices", tokens)
    snapped = tuple(sorted({make_divisible(w, p) for w in widths}))
    return Stage(st.stride, snapped, depths, tuple(st.blocks), tuple(st.first) if st.first else None)


# ---------------------------------------------------------------------------------------------- space
class MacroSpace(SearchSpace):
    """A MobileNet-style space declared as data (see the module docstring).

    ``stages``: the :class:`Stage` s; ``resolutions``: input sides; ``stem`` / ``head``: their widths
    (``head=None``: no head conv); ``stem_stride``; ``classes``; ``act``: the activation (one of the IR's,
    :data:`~zeroshot.spaces.ir.ACTIVATIONS`); ``skip_act``: the activation after a shape-changing skip's 1x1 conv (None: none);
    ``parallelism``: P, the multiple widths snap to; ``name``: the name it reports (and is registered
    under by :meth:`register`)."""

    resolution_column = 0          # the code column holding the input side (what a proxy scale changes)

    def __init__(self, stages: Sequence[Stage], resolutions: int | Sequence[int] = 224, stem: int = 32,
                 head: int | None = 1280, stem_stride: int = 2, classes: int = 1000, act: str = "relu6",
                 skip_act: str | None = None, parallelism: int = 16, name: str = "macro",
                 description: str | None = None):
        p = check_int("parallelism", parallelism, 1, "a positive integer (1: widths as declared)")
        for param, value in (("act", act), ("skip_act", skip_act)):
            if value is not None and value not in ACTIVATIONS:
                raise ParameterError(param, f"one of {', '.join(ACTIVATIONS)}", value)
        if not stages:
            raise ParameterError("stages", "at least one Stage", stages)
        self.resolutions = _options("resolutions", resolutions)
        if max(self.resolutions) > MAX_RESOLUTION:
            raise ParameterError("resolutions", f"input sides in 1..{MAX_RESOLUTION}", resolutions)
        self.stages = tuple(_checked_stage(i, st, p) for i, st in enumerate(stages, 1))
        self.parallelism, self.act, self.skip_act = p, act, skip_act
        self.classes = check_int("classes", classes, 1, "a positive integer")
        self.stem = make_divisible(check_int("stem", stem, 1, "a positive integer"), p)
        self.stem_stride = check_int("stem_stride", stem_stride, 1, "a positive integer")
        self.head = (None if head is None
                     else make_divisible(check_int("head", head, 1, "a positive integer"), p))
        self.name = name
        self.description = description or (f"declared MobileNet-style space: {len(self.stages)} stages, widths "
                                           f"multiples of P={self.parallelism}, resolution "
                                           f"{'/'.join(map(str, self.resolutions))}, {self.classes} classes")
        self._offsets = np.cumsum([1] + [2 + st.slots for st in self.stages[:-1]])    # each stage's width column
        self.code_length = 1 + sum(2 + st.slots for st in self.stages)
        self._tokens = [[{b.token: i for i, b in enumerate(st.choices_at(j))} for j in range(min(st.slots, 2))]
                        for st in self.stages]
        blocks = [b for st in self.stages for b in st.choices_at(0) + st.choices_at(1)]
        self._segmented = all(b.kind != "custom" and not b.se for b in blocks) and len(self.stages) <= 64 and \
            all(len(st.widths) <= 256 and max(len(st.choices_at(0)), len(st.choices_at(1))) <= 1024
                for st in self.stages)

    def register(self, name: str | None = None, replace: bool = False) -> "MacroSpace":
        """Register this space by ``name`` (default: its own) for :func:`~zeroshot.spaces.get_space`, the
        API and the screening funnel, in this Python process; returns the space."""
        return register_space(self, name=name, replace=replace)

    def __repr__(self) -> str:
        return f"MacroSpace(name={self.name!r}, stages={len(self.stages)}, size={self.size})"

    @property
    def size(self) -> int:
        out = len(self.resolutions)
        for st in self.stages:
            first, rest = len(st.choices_at(0)), len(st.choices_at(1))
            out *= len(st.widths) * sum(first * rest ** (d - 1) for d in st.depths)
        return out

    # ------------------------------------------------------------------ text <-> codes
    def parse(self, text: str) -> np.ndarray:
        fields = text.split("|")
        if len(fields) != len(self.stages) + 1:
            raise EncodingError(f"expected {len(self.stages) + 1} fields separated by '|' ('r<resolution>', then "
                                f"{len(self.stages)} stages 'c<width> <block> ...'), got {len(fields)} in "
                                f"{text[:80]!r}")
        out = [self._resolution_of(fields[0])]
        for s, field in enumerate(fields[1:]):
            out += self._parse_stage(s, field.split())
        return np.array(out, dtype=np.int64)

    def _resolution_of(self, field: str) -> int:
        allowed = ", ".join(f"r{r}" for r in self.resolutions)
        m = re.fullmatch(r"r([0-9]+)", field.strip(), re.ASCII)
        if m is None or int(m[1]) not in self.resolutions:
            raise EncodingError(f"bad resolution {field.strip()!r}: choose from {allowed}")
        return int(m[1])

    def _parse_stage(self, s: int, tokens: list[str]) -> list[int]:
        st = self.stages[s]
        widths = ", ".join(f"c{w}" for w in st.widths)
        m = re.fullmatch(r"c([0-9]+)", tokens[0], re.ASCII) if tokens else None
        if m is None or int(m[1]) not in st.widths:
            raise EncodingError(f"stage {s + 1} must start with its width, one of {widths}; got "
                                f"{' '.join(tokens)[:40]!r}")
        blocks = tokens[1:]
        if len(blocks) not in st.depths:
            raise EncodingError(f"stage {s + 1} has {len(blocks)} blocks; its depth is one of "
                                f"{', '.join(map(str, st.depths))}")
        out = [int(m[1]), len(blocks)]
        for j, token in enumerate(blocks):
            index = self._tokens[s][min(j, 1)].get(token)
            if index is None:
                raise EncodingError(f"stage {s + 1} block {j + 1}: {token!r} is not a choice there; choose from "
                                    f"{', '.join(self._tokens[s][min(j, 1)])}")
            out.append(index)
        return out + [-1] * (st.slots - len(blocks))

    def format(self, codes) -> str:
        res, stages = self.decode(codes)
        body = " | ".join(" ".join([f"c{w}"] + [st.choices_at(j)[i].token for j, i in enumerate(idx)])
                          for st, (w, idx) in zip(self.stages, stages))
        return f"r{res} | {body}"

    def decode(self, codes) -> tuple[int, list[tuple[int, list[int]]]]:
        """``(resolution, [(width, block choice indices), ...])`` of a code vector; :class:`EncodingError`
        for codes outside the space."""
        v = np.asarray(codes).tolist()
        if len(v) != self.code_length:
            raise EncodingError(f"{self.name} codes have {self.code_length} integers, got {len(v)}")
        if not 1 <= v[0] <= MAX_RESOLUTION:
            raise EncodingError(f"codes: resolution must be in 1..{MAX_RESOLUTION}, got {v[0]}")
        stages = []
        for s, (st, o) in enumerate(zip(self.stages, self._offsets)):
            width, depth, slots = v[o], v[o + 1], v[o + 2:o + 2 + st.slots]
            ok = width in st.widths and depth in st.depths and all(x == -1 for x in slots[depth:]) and \
                all(0 <= x < len(st.choices_at(j)) for j, x in enumerate(slots[:depth]))
            if not ok:
                raise EncodingError(f"codes: stage {s + 1} {[width, depth, *slots]} is not [width, depth, a "
                                    "choice index per slot up to the depth, then -1]")
            stages.append((width, slots[:depth]))
        return v[0], stages

    # ------------------------------------------------------------------ IR
    def build_ir(self, codes) -> Arch:
        res, stages = self.decode(codes)
        g = Graph(3, res, res)
        t = self._stem(g)
        for st, (width, idx) in zip(self.stages, stages):
            for j, i in enumerate(idx):
                t = st.choices_at(j)[i].build(g, t, width, st.stride if j == 0 else 1, self.act, self.skip_act)
        return g.finish(self._head(g, t), space=self.name)

    def _stem(self, g: Graph) -> int:
        return _conv_bn(g, 0, self.stem, 3, self.stem_stride, self.act)

    def _head(self, g: Graph, t: int) -> int:
        if self.head is not None:
            t = _conv_bn(g, t, self.head, 1, 1, self.act)
        return g.classifier(t, self.classes)

    # Segments: the stem, each present block, the head.  A key packs the kind at bit 61, the input side in
    # bits 0-12 and for a block: width index (8 bits from 13), input width index (8, from 21: the previous
    # stage's for a first slot, the stem's 0 for stage 1), choice (10, from 29), first slot (1, bit 39),
    # stage (6, from 40).  Spaces with custom blocks (their shapes are the factory's), squeeze-excite (its
    # gate multiplies two functions of the input: the cheap score's entropy is not additive over segments) or
    # more choices than that are evaluated whole.
    _STEM, _BLOCK, _HEAD = 0, 1, 2

    def segment_keys(self, codes: np.ndarray) -> np.ndarray:
        if not self._segmented:
            raise NotImplementedError(f"space {self.name!r} has custom or squeeze-excite blocks, or too many "
                                      "choices to split into segments")
        codes = np.asarray(codes, dtype=np.int64).reshape(-1, self.code_length)
        res = codes[:, 0]
        keys = [(self._STEM << 61) | res]
        before = np.zeros(len(codes), np.int64)                       # the previous stage's width index
        for s, (st, o) in enumerate(zip(self.stages, self._offsets)):
            width = np.searchsorted(st.widths, codes[:, o])
            for j in range(st.slots):
                choice = codes[:, o + 2 + j]
                key = (self._BLOCK << 61) | (s << 40) | (int(j == 0) << 39) | (choice << 29) | \
                    ((before if j == 0 else width) << 21) | (width << 13) | res
                keys.append(np.where(choice >= 0, key, -1))
            before = width
        keys.append((self._HEAD << 61) | (before << 13) | res)
        return np.stack(keys, axis=1)

    def segment_ir(self, key: int) -> Arch:
        key = int(key)
        kind, res = key >> 61, key & 0x1FFF
        if kind == self._STEM:
            g = Graph(3, res, res)
            return g.finish(self._stem(g), space=self.name)
        sides = self._sides(res)
        width = (key >> 13) & 0xFF
        if kind == self._HEAD:
            g = Graph(self.stages[-1].widths[width], sides[-1], sides[-1])
            return g.finish(self._head(g, 0), space=self.name)
        s, first, choice, before = (key >> 40) & 0x3F, (key >> 39) & 1, (key >> 29) & 0x3FF, (key >> 21) & 0xFF
        st = self.stages[s]
        c_in = (self.stages[s - 1].widths[before] if s else self.stem) if first else st.widths[width]
        side = sides[s] if first else sides[s + 1]
        g = Graph(c_in, side, side)
        block = st.choices_at(0 if first else 1)[choice]
        return g.finish(block.build(g, 0, st.widths[width], st.stride if first else 1, self.act, self.skip_act),
                        space=self.name)

    def _sides(self, res: int) -> list[int]:
        """The input side of each stage, then of the head (odd kernels, padding k // 2)."""
        out = [(res - 1) // self.stem_stride + 1]
        for st in self.stages:
            out.append((out[-1] - 1) // st.stride + 1)
        return out

    # ------------------------------------------------------------------ sampling, mutation, crossover
    def sample_codes(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` members: a resolution, per stage a width and a depth, per slot a block, uniformly."""
        out = np.full((n, self.code_length), -1, np.int64)
        out[:, 0] = rng.choice(self.resolutions, n)
        for st, o in zip(self.stages, self._offsets):
            out[:, o] = rng.choice(st.widths, n)
            depth = rng.choice(st.depths, n)
            out[:, o + 1] = depth
            for j in range(st.slots):
                pick = rng.integers(0, len(st.choices_at(j)), n)
                out[:, o + 2 + j] = np.where(j < depth, pick, -1)
        return out

    def mutate_codes(self, codes, rng: np.random.Generator) -> np.ndarray:
        """Change one choice: the resolution, a stage's width or depth (new slots drawn at random), or one
        block."""
        out = np.array(codes, dtype=np.int64)
        self.decode(out)
        genes = [(0, self.resolutions)] if len(self.resolutions) > 1 else []
        for st, o in zip(self.stages, self._offsets):
            genes += [(o, st.widths)] if len(st.widths) > 1 else []
            genes += [(o + 1, st.depths)] if len(st.depths) > 1 else []
            genes += [(o + 2 + j, range(len(st.choices_at(j)))) for j in range(out[o + 1])
                      if len(st.choices_at(j)) > 1]
        if not genes:
            raise InputError(f"space {self.name!r} has a single architecture; nothing to mutate into")
        column, options = genes[int(rng.integers(len(genes)))]
        rest = [x for x in options if x != out[column]]
        out[column] = rest[int(rng.integers(len(rest)))]
        for st, o in zip(self.stages, self._offsets):
            if column == o + 1:
                self._fill_slots(out, st, o, rng)
        return out

    def _fill_slots(self, codes: np.ndarray, st: Stage, o: int, rng: np.random.Generator) -> None:
        """Slots of a stage past its depth set to -1, empty slots within it drawn at random."""
        for j in range(st.slots):
            slot = o + 2 + j
            if j >= codes[o + 1]:
                codes[slot] = -1
            elif codes[slot] == -1:
                codes[slot] = int(rng.integers(len(st.choices_at(j))))

    def crossover_codes(self, a, b, rng: np.random.Generator) -> np.ndarray:
        """The resolution, each stage's width and depth, and each block from ``a`` or ``b`` (blocks past the
        shorter parent's depth from the parent the depth came from)."""
        a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        out = np.where(rng.random(self.code_length) < 0.5, a, b)
        for st, o in zip(self.stages, self._offsets):
            deep = (a, b)[int(rng.integers(2))]
            out[o + 1] = deep[o + 1]
            for j in range(st.slots):
                slot = o + 2 + j
                if j >= min(a[o + 1], b[o + 1]):
                    out[slot] = deep[slot]
        return out

    # ------------------------------------------------------------------ redundancy, enumeration
    def canonical_codes(self, codes: np.ndarray) -> np.ndarray:
        """Per row, non-first ``skip`` blocks moved to the end of their stage and the stage shortened to the
        smallest depth option holding the other blocks (those skips compute nothing)."""
        out = np.array(codes, dtype=np.int64).reshape(-1, self.code_length)
        for s, (st, o) in enumerate(zip(self.stages, self._offsets)):
            identity = self._tokens[s][1].get("skip") if st.slots > 1 else None
            if identity is None:
                continue
            for row in out:
                kept = [x for x in row[o + 3:o + 2 + row[o + 1]] if x != identity]
                depth = min(d for d in st.depths if d >= 1 + len(kept))
                row[o + 1] = depth
                row[o + 3:o + 2 + st.slots] = kept + [identity] * (depth - 1 - len(kept)) + \
                    [-1] * (st.slots - depth)
        return out

    def enumerate_codes(self, chunk: int = 65536) -> Iterator[np.ndarray]:
        if self.size > MAX_ENUMERATION:
            return super().enumerate_codes(chunk)
        return self._enumerate(chunk)

    def _enumerate(self, chunk: int) -> Iterator[np.ndarray]:
        parts = [np.array(self.resolutions, np.int64)[:, None]] + [_stage_rows(st) for st in self.stages]
        cards = np.array([len(p) for p in parts], np.int64)
        weights = np.append(np.cumprod(cards[::-1])[::-1][1:], 1)
        for start in range(0, self.size, chunk):
            idx = np.arange(start, min(start + chunk, self.size), dtype=np.int64)
            digits = (idx[:, None] // weights[None, :]) % cards[None, :]
            yield np.hstack([p[digits[:, i]] for i, p in enumerate(parts)])


def _stage_rows(st: Stage) -> np.ndarray:
    """Every ``[width, depth, slot choices..., -1...]`` of a stage, one per row (the first slot varying
    slowest after the width and the depth)."""
    rows = []
    for w in st.widths:
        for d in st.depths:
            for blocks in itertools.product(*(range(len(st.choices_at(j))) for j in range(d))):
                rows.append([w, d, *blocks] + [-1] * (st.slots - d))
    return np.array(rows, np.int64)
