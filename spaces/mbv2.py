"""mbv2: the curated accelerator-aware MobileNetV2-style space.

Network: stem 3x3 conv stride 2 + BN + ReLU6; 7 stages (strides 1,2,2,2,1,2,1, on each stage's first
block); head 1x1 conv + BN + ReLU6, global average pool, linear (with bias) to ``classes``.  Every block is

- IBN ``i``: 1x1 expand conv to ``c_in * e`` + BN + ReLU6 (dropped when ``e = 1``) -> KxK depthwise conv
  (the stride) + BN + ReLU6 -> 1x1 project conv + BN;
- fused IBN ``f``: KxK conv to ``c_in * e`` (the stride) + BN + ReLU6 -> 1x1 project conv + BN; with
  ``e = 1`` a single KxK conv to ``c_out`` + BN + ReLU6;

with a residual add when the stride is 1 and ``c_in == c_out``.  No conv has a bias.

Encoding (one canonical line): ``r<resolution> s<stem> | <stage 1> | ... | <stage 7> | h<head>``, a stage
being its blocks separated by spaces, a block ``<i|f><kernel>e<expansion>c<out channels>``.  It expresses
networks outside the curated choices too (any widths, per block), for example MobileNetV2 1.0
(:data:`MOBILENETV2`, 3,504,872 parameters).  Limits: kernels odd <= 15, expansions <= 64, channels
<= 65,536, resolution <= 4,096, and per stage at most :attr:`Curated.slots` blocks.

Codes (int64): ``[resolution, stem, head]`` then, per block slot (stage by stage, ``slots[s]`` slots each),
``[present, type, kernel, expansion, channels]`` as values (type 0 = IBN, 1 = fused); absent slots are
all zeros.  Code length 108 with the default raw space (slots 1,3,4,4,4,4,1: the largest curated or
MobileNetV2 depth per stage).  :meth:`Mbv2Space.contains` says whether codes are curated members.

Curated choices (:func:`zeroshot.spaces.curation.curate` of :data:`zeroshot.spaces.curation.MOBILENETV2_RAW`): resolution
{160, 192, 224}; channel multiplier {0.5, 0.75, 1.0, 1.25} choosing the stem (make_divisible(32 m, P)),
head (make_divisible(1280 max(1, m), P)) and each stage's width options (one width per stage, the same for
all its blocks); stage depths {1}, {1,2,3}, {2,3,4} x4, {1}; per block IBN/fused x kernel {3,5} x
expansion {1,3,6}.  Exact sizes: P=16 (default): 792,238,737,304,369,265,217,896,448 (7.92e26, 3,726
channel plans); P=8: 1.55e27 (7,290 plans); P=32: 3.19e26 (1,502 plans).  Sampling draws a resolution,
a multiplier, per stage a width option and a depth, per block a type, kernel and expansion, uniformly;
mutation and crossover of curated members stay curated (``benchmarks/mbv2_sampling.py``: ~0.16 s CPU per
million samples).

Options: ``Mbv2Space(parallelism=16, classes=None, task="classify", raw=MOBILENETV2_RAW)``; ``task``
chooses the head (:meth:`Mbv2Space._head`): ``classify`` (1000 classes by default), ``detect`` (SSDLite,
91), ``segment`` (LR-ASPP, 21).  The encoding is the same for every task (the backbone); only
classification networks split into chained segments (:meth:`Mbv2Space.segment_keys`).

Example
-------
>>> space = Mbv2Space()
>>> space.to_ir(MOBILENETV2).params
3504872
>>> codes = space.sample_codes(1000, np.random.default_rng(0))
>>> space.contains(space.parse(MOBILENETV2)), bool(space.contains(codes).all())
(False, True)
>>> space.format(codes[0])
'r224 s32 | i3e6c16 | i3e3c48 f5e3c48 i3e6c48 | f5e1c48 f3e1c48 i3e3c48 i5e1c48 | i3e3c80 i3e3c80 | f5e1c96 i5e6c96 f3e6c96 f3e6c96 | f5e3c256 f3e3c256 i3e1c256 | i3e3c256 | h1280'
"""
from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from zeroshot.checks import check_int
from zeroshot.errors import ParameterError

from . import _mbv2, register_space
from .base import MAX_RESOLUTION, EncodingError, SearchSpace
from .curation import BLOCK_TYPES, MOBILENETV2_RAW, Curated, RawSpace, curate
from .ir import Arch, Graph

__all__ = ["DEFAULT_CLASSES", "FIELDS", "HEADER", "LRASPP_CHANNELS", "MOBILENETV2", "Mbv2Space", "SSD_ANCHORS",
           "SSD_EXTRAS", "TASKS"]

#: MobileNetV2 1.0 at 224x224: IBN k3 everywhere, expansions 1 then 6, channels not aligned to 16.
MOBILENETV2 = ("r224 s32 | i3e1c16 | i3e6c24 i3e6c24 | i3e6c32 i3e6c32 i3e6c32 | "
               "i3e6c64 i3e6c64 i3e6c64 i3e6c64 | i3e6c96 i3e6c96 i3e6c96 | i3e6c160 i3e6c160 i3e6c160 | "
               "i3e6c320 | h1280")

FIELDS = 5                        # per block slot: present, type, kernel, expansion, channels
HEADER = 3                        # resolution, stem, head
assert _mbv2.LAYOUT == {"header": HEADER, "fields": FIELDS}, "ext/_mbv2.pyx disagrees on the code row layout"
MAX_KERNEL, MAX_EXPANSION, MAX_CHANNELS = 15, 64, 65536
TASKS = ("classify", "detect", "segment")   # the heads of _head
#: Default number of classes per task: ImageNet, COCO (with background, as torchvision's SSDLite),
#: Pascal VOC (with background, as torchvision's LR-ASPP).
DEFAULT_CLASSES = {"classify": 1000, "detect": 91, "segment": 21}
SSD_EXTRAS = (512, 256, 256, 128)  # SSDLite extra feature blocks (channels)
SSD_ANCHORS = 6                    # anchors per location on every feature map (torchvision SSDLite)
LRASPP_CHANNELS = 128              # LR-ASPP inner width
_CHUNK = 4096                     # rows sampled at a time (cache-sized work arrays)
_NUM = "([1-9][0-9]*)"
_BLOCK_RE = re.compile(f"([if]){_NUM}e{_NUM}c{_NUM}", re.ASCII)
_BLOCK_FORM = "<i|f><kernel>e<expansion>c<channels> like 'i3e6c24' (i = IBN, f = fused IBN)"


@lru_cache(maxsize=1 << 16)
def _parse_block(token: str) -> tuple[int, int, int, int] | str:
    """(type, kernel, expansion, channels) of a block token, or the reason it is not one."""
    m = _BLOCK_RE.fullmatch(token)
    if m is None:
        return f"expected {_BLOCK_FORM}"
    k, e, c = int(m[2]), int(m[3]), int(m[4])
    if k % 2 == 0 or k > MAX_KERNEL:
        return f"kernel {k} must be odd and at most {MAX_KERNEL}"
    if e > MAX_EXPANSION or c > MAX_CHANNELS:
        return f"expansion must be at most {MAX_EXPANSION} and channels at most {MAX_CHANNELS}"
    return BLOCK_TYPES.index(m[1]), k, e, c


@lru_cache(maxsize=1 << 16)
def _block_token(t: int, k: int, e: int, c: int) -> str:
    return f"{BLOCK_TYPES[t]}{k}e{e}c{c}"


def _header_value(token: str, letter: str, what: str, limit: int, example: int) -> int:
    m = re.fullmatch(f"{letter}{_NUM}", token, re.ASCII)
    if m is None or int(m[1]) > limit:
        raise EncodingError(f"bad {what} token {token!r}: expected {letter}<{what}> with {what} 1..{limit}, "
                            f"like '{letter}{example}'")
    return int(m[1])


@register_space
class Mbv2Space(SearchSpace):
    """The curated accelerator-aware MobileNetV2 space (see the module docstring for the encoding)."""

    name = "mbv2"
    resolution_column = 0           # the code column holding the input side (what a proxy scale changes)

    def __init__(self, parallelism: int = 16, classes: int | None = None, task: str = "classify",
                 raw: RawSpace = MOBILENETV2_RAW):
        if task not in TASKS:
            raise ParameterError("task", f"one of {', '.join(TASKS)}", task)
        classes = DEFAULT_CLASSES[task] if classes is None else classes
        check_int("classes", classes, 1, "a positive integer")
        self.curated: Curated = curate(raw, parallelism)
        self.parallelism, self.classes, self.task = int(parallelism), int(classes), task
        cur = self.curated
        self.n_stages = len(cur.strides)
        self.slot_stage = np.repeat(np.arange(self.n_stages), cur.slots)                 # stage of each slot
        self.stage_start = np.concatenate([[0], np.cumsum(cur.slots)])                  # first slot of a stage
        self.slot_pos = np.arange(len(self.slot_stage)) - self.stage_start[self.slot_stage]
        self._strides = np.array(cur.strides, np.int64)
        self.code_length = HEADER + FIELDS * len(self.slot_stage)
        self.description = (f"MobileNetV2-style, IBN/fused blocks, widths multiples of P={self.parallelism}, "
                            f"{len(cur.multipliers)} channel multipliers, resolution "
                            f"{'/'.join(map(str, cur.resolutions))}, {task} head ({self.classes} classes)")
        # Padded tables for vectorised sampling and membership.
        n_m, widest = len(cur.multipliers), max(len(w) for ws in cur.widths for w in ws)
        self._widths = np.zeros((n_m, self.n_stages, widest), np.int64)
        self._n_widths = np.zeros((n_m, self.n_stages), np.int64)
        for m, ws in enumerate(cur.widths):
            for s, w in enumerate(ws):
                self._widths[m, s, :len(w)] = w
                self._n_widths[m, s] = len(w)
        self._depths = np.zeros((self.n_stages, max(map(len, cur.depths))), np.int64)
        self._n_depths = np.array([len(d) for d in cur.depths], np.int64)
        for s, d in enumerate(cur.depths):
            self._depths[s, :len(d)] = d
        # Row 0 an absent slot, then every (present, type, kernel, expansion, 1) a block can take; the
        # channels are multiplied in.
        self._block_choices = np.array([(0,) * FIELDS] + [(1, t, k, e, 1) for t in cur.blocks for k in cur.kernels
                                                          for e in cur.expansions], np.int64)

    def __repr__(self) -> str:
        return f"Mbv2Space(parallelism={self.parallelism}, classes={self.classes}, task={self.task!r})"

    @property
    def size(self) -> int:
        return self.curated.size

    # ------------------------------------------------------------------ text <-> codes
    def parse(self, text: str) -> np.ndarray:
        fields = text.split("|")
        if len(fields) != self.n_stages + 2:
            raise EncodingError(f"expected {self.n_stages + 2} fields separated by '|' ('r<resolution> "
                                f"s<stem>', {self.n_stages} stages of blocks, 'h<head>') like "
                                f"{MOBILENETV2[:28] + ' ... | h1280'!r}, got {len(fields)} in {text[:80]!r}")
        first, last = fields[0].split(), fields[-1].split()
        if len(first) != 2:
            raise EncodingError(f"the first field must be two tokens 'r<resolution> s<stem channels>' like "
                                f"'r224 s32', got {fields[0].strip()!r}")
        if len(last) != 1:
            raise EncodingError(f"the last field must be one token 'h<head channels>' like 'h1280', got "
                                f"{fields[-1].strip()!r}")
        out = [_header_value(first[0], "r", "resolution", MAX_RESOLUTION, 224),
               _header_value(first[1], "s", "stem channels", MAX_CHANNELS, 32),
               _header_value(last[0], "h", "head channels", MAX_CHANNELS, 1280)]
        slots = self.curated.slots
        for s, field in enumerate(fields[1:-1]):
            tokens = field.split()
            if not tokens:
                raise EncodingError(f"stage {s + 1} has no blocks; every stage needs at least one, like 'i3e6c24'")
            if len(tokens) > slots[s]:
                raise EncodingError(f"stage {s + 1} has {len(tokens)} blocks; this space holds at most "
                                    f"{slots[s]} there (curated depths {self.curated.depths[s]})")
            for j, token in enumerate(tokens):
                block = _parse_block(token)
                if isinstance(block, str):
                    raise EncodingError(f"stage {s + 1} block {j + 1}: bad block {token!r}: {block}")
                out += (1, *block)
            out += [0] * (FIELDS * (slots[s] - len(tokens)))
        return np.array(out, dtype=np.int64)

    def format(self, codes) -> str:
        res, stem, head, stages = self.decode(codes)
        body = " | ".join(" ".join(_block_token(*b) for b in blocks) for blocks in stages)
        return f"r{res} s{stem} | {body} | h{head}"

    def decode(self, codes) -> tuple[int, int, int, list[list[tuple[int, int, int, int]]]]:
        """``(resolution, stem, head, stages)`` of a code vector, each stage a list of
        ``(type, kernel, expansion, channels)``; raises :class:`EncodingError` for non-canonical codes."""
        v = np.asarray(codes).tolist()
        if len(v) != self.code_length:
            raise EncodingError(f"mbv2 codes have {self.code_length} integers, got {len(v)}")
        res, stem, head = v[:HEADER]
        if not (1 <= res <= MAX_RESOLUTION and 1 <= stem <= MAX_CHANNELS and 1 <= head <= MAX_CHANNELS):
            raise EncodingError(f"codes: resolution, stem and head must be in 1..{MAX_RESOLUTION}, "
                                f"1..{MAX_CHANNELS}, 1..{MAX_CHANNELS}; got {res}, {stem}, {head}")
        stages = []
        for s in range(self.n_stages):
            blocks = []
            for slot in range(self.stage_start[s], self.stage_start[s + 1]):
                present, t, k, e, c = v[HEADER + FIELDS * slot: HEADER + FIELDS * (slot + 1)]
                if present == 0 and t == k == e == c == 0:
                    continue
                if present != 1 or len(blocks) < slot - self.stage_start[s] or t not in (0, 1) \
                        or not (k % 2 == 1 and 1 <= k <= MAX_KERNEL and 1 <= e <= MAX_EXPANSION
                                and 1 <= c <= MAX_CHANNELS):
                    raise EncodingError(f"codes: stage {s + 1} slot {slot - self.stage_start[s] + 1} "
                                        f"{[present, t, k, e, c]} is not a block (1, type 0/1, odd kernel, "
                                        "expansion, channels) after present blocks, nor all zeros")
                blocks.append((t, k, e, c))
            if not blocks:
                raise EncodingError(f"codes: stage {s + 1} has no block")
            stages.append(blocks)
        return res, stem, head, stages

    def encode(self, res: int, stem: int, head: int, stages) -> np.ndarray:
        """Codes of ``(resolution, stem, head, stages)`` as :meth:`decode` returns them."""
        out = [res, stem, head]
        for blocks, n in zip(stages, self.curated.slots):
            for b in blocks:
                out += (1, *b)
            out += [0] * (FIELDS * (n - len(blocks)))
        return np.array(out, dtype=np.int64)

    # ------------------------------------------------------------------ IR
    def build_ir(self, codes) -> Arch:
        res, stem, head, stages = self.decode(codes)
        g = Graph(3, res, res)
        t = g.act(g.bn(g.conv(0, stem, 3, stride=2)), "relu6")
        ends, out_stride = {}, 2                        # output stride -> last stage output at it
        for blocks, stride in zip(stages, self.curated.strides):
            for j, (typ, k, e, c) in enumerate(blocks):
                t = _block(g, t, typ, k, e, c, stride if j == 0 else 1)
            out_stride *= stride
            ends[out_stride] = t
        t = g.act(g.bn(g.conv(t, head, 1)), "relu6")
        return g.finish(*self._head(g, t, ends), task=self.task, space=self.name)

    # Segments (classification only; other heads read several stages): the stem, each present block, the
    # head.  Keys pack shapes: bits 61-62 the segment kind; a block packs type (1 bit), kernel (4),
    # expansion (7), c_in (17), c_out (17), stride (2) and input size (13); ext/_mbv2.pyx packs this layout.
    _STEM, _BLOCK, _HEAD = 0, 1, 2

    def segment_keys(self, codes: np.ndarray) -> np.ndarray:
        if self.task != "classify":
            raise NotImplementedError(f"mbv2 {self.task} heads read several stages: no chain of segments")
        codes = np.ascontiguousarray(codes, dtype=np.int64).reshape(-1, self.code_length)
        keys = np.empty((len(codes), len(self.slot_stage) + 2), np.int64)
        _mbv2.segment_keys(codes, self._strides, self.slot_stage, keys)        # Cython, GIL released
        return keys

    def segment_ir(self, key: int) -> Arch:
        key = int(key)
        kind = key >> 61
        if kind == self._STEM:
            res, stem = (key >> 17) & 0x1FFF, key & 0x1FFFF
            g = Graph(3, res, res)
            return g.finish(g.act(g.bn(g.conv(0, stem, 3, stride=2)), "relu6"), space=self.name)
        if kind == self._BLOCK:
            typ, k, e = (key >> 60) & 1, (key >> 56) & 0xF, (key >> 49) & 0x7F
            c_in, c_out, stride, h = (key >> 32) & 0x1FFFF, (key >> 15) & 0x1FFFF, (key >> 13) & 3, key & 0x1FFF
            g = Graph(c_in, h, h)
            return g.finish(_block(g, 0, typ, k, e, c_out, stride), space=self.name)
        c, head, h = (key >> 30) & 0x1FFFF, (key >> 13) & 0x1FFFF, key & 0x1FFF
        g = Graph(c, h, h)
        t = g.act(g.bn(g.conv(0, head, 1)), "relu6")
        return g.finish(*self._head(g, t), task=self.task, space=self.name)

    def _head(self, g: Graph, features: int, ends: dict[int, int] | None = None) -> tuple[int, ...]:
        """Output tensors of the task head (the one place for every task's head).

        ``features``: the final 1x1 conv's output; ``ends``: output stride -> the last stage output at it.

        - classify: global average pool + linear to ``classes``;
        - detect (SSDLite, torchvision's ``ssdlite320_mobilenet_v3_large`` layout): feature maps = the last
          stage output at output stride 16 (MobileNetV2's stage 5), ``features`` (stride 32), then extra
          blocks of :data:`SSD_EXTRAS` channels on ``features`` (1x1 to half + BN + ReLU6, 3x3 depthwise
          stride 2 + BN + ReLU6, 1x1 + BN + ReLU6); on each map a class and a box head, each a 3x3
          depthwise conv + BN + ReLU6 + 1x1 conv with bias to :data:`SSD_ANCHORS` x (classes | 4);
          outputs ``(cls_1, box_1, ..., cls_6, box_6)``;
        - segment (LR-ASPP, torchvision's ``lraspp_mobilenet_v3_large``): ``features`` -> 1x1 conv
          :data:`LRASPP_CHANNELS` + BN + ReLU, times a sigmoid gate (global pool -> 1x1 conv), upsampled to
          the stride-8 stage output and classified by a 1x1 conv (bias), added to a 1x1 classifier (bias) on
          that low-level feature, upsampled to the input size; one output ``classes x H x W``.
        """
        if self.task == "classify":
            return (g.classifier(features, self.classes),)
        if self.task == "detect":
            maps, x = [ends[16], features], features
            for c in SSD_EXTRAS:
                x = g.act(g.bn(g.conv(x, c // 2, 1)), "relu6")
                x = g.act(g.bn(g.conv(x, c // 2, 3, stride=2, groups=c // 2)), "relu6")
                maps.append(x := g.act(g.bn(g.conv(x, c, 1)), "relu6"))
            return tuple(g.conv(g.act(g.bn(g.conv(m, g.shape(m)[0], 3, groups=g.shape(m)[0])), "relu6"),
                                SSD_ANCHORS * width, 1, bias=True)
                         for m in maps for width in (self.classes, 4))
        low = ends[8]
        x = g.act(g.bn(g.conv(features, LRASPP_CHANNELS, 1)), "relu")
        gate = g.act(g.conv(g.gap(features), LRASPP_CHANNELS, 1), "sigmoid")
        _, h, w = g.shape(low)
        x = g.conv(g.upsample(g.mul(x, gate), -(-h // g.shape(x)[1]), size=(h, w)), self.classes, 1, bias=True)
        y = g.add([g.conv(low, self.classes, 1, bias=True), x])
        _, h_in, w_in = g.input_shape
        return (g.upsample(y, -(-h_in // h), size=(h_in, w_in)),)

    # ------------------------------------------------------------------ curated set
    def sample_codes(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` curated members: numpy draws the random numbers in cache-sized chunks, Cython turns them
        into code rows (about 0.16 s CPU per million)."""
        cur = self.curated
        out = np.empty((n, self.code_length), np.int64)
        out[:, 0] = np.array(cur.resolutions)[rng.integers(0, len(cur.resolutions), n)]
        m = rng.integers(0, len(cur.multipliers), n)
        out[:, 1] = np.array(cur.stem)[m]
        out[:, 2] = np.array(cur.head)[m]
        for a in range(0, n, _CHUNK):
            b = min(a + _CHUNK, n)
            u = rng.random((2, b - a, self.n_stages))
            choice = rng.integers(1, len(self._block_choices), (b - a, len(self.slot_stage)), dtype=np.int16)
            _mbv2.fill_blocks(u, choice, m[a:b], self._widths, self._n_widths, self._depths, self._n_depths,
                              self._block_choices, self.slot_stage, self.slot_pos, out[a:b])
        return out

    def contains(self, codes) -> np.ndarray | bool:
        """Whether code vectors (one, or rows) are curated members: what :meth:`sample_codes` can draw."""
        c = np.asarray(codes, dtype=np.int64)
        rows = np.atleast_2d(c)
        if rows.shape[1] != self.code_length:
            raise ValueError(f"mbv2 codes have {self.code_length} columns, got {rows.shape[1]}")
        ok = np.concatenate([self._contains_rows(rows[a:a + _CHUNK]) for a in range(0, len(rows), _CHUNK)]
                            or [np.zeros(0, bool)])
        return bool(ok[0]) if c.ndim == 1 else ok

    def _contains_rows(self, rows: np.ndarray) -> np.ndarray:
        cur = self.curated
        blocks = rows[:, HEADER:].reshape(len(rows), -1, FIELDS)
        present = blocks[..., 0]
        depth = np.add.reduceat(present, self.stage_start[:-1], axis=1)
        ok = _among(rows[:, 0], cur.resolutions) & _among(present, (0, 1)).all(1)
        ok &= (present == (self.slot_pos < depth[:, self.slot_stage])).all(1)
        for s, options in enumerate(cur.depths):
            ok &= _among(depth[:, s], options)
        on = present == 1
        width = blocks[:, self.stage_start[:-1], 4]                                     # first block's
        for f, options in ((1, cur.blocks), (2, cur.kernels), (3, cur.expansions)):
            ok &= np.where(on, _among(blocks[..., f], options), blocks[..., f] == 0).all(1)
        ok &= (blocks[..., 4] == np.where(on, width[:, self.slot_stage], 0)).all(1)
        plan = np.zeros(len(rows), bool)
        for m in range(len(cur.multipliers)):
            fits = (rows[:, 1] == cur.stem[m]) & (rows[:, 2] == cur.head[m])
            for s in range(self.n_stages):
                fits &= _among(width[:, s], cur.widths[m][s])
            plan |= fits
        return ok & plan

    def _multipliers_of(self, stem: int, head: int, widths) -> list[int]:
        """Indices of the multipliers whose channel options hold this (stem, stage widths, head)."""
        cur = self.curated
        return [m for m in range(len(cur.multipliers)) if cur.stem[m] == stem and cur.head[m] == head
                and all(w in cur.widths[m][s] for s, w in enumerate(widths))]

    def mutate_codes(self, codes, rng: np.random.Generator) -> np.ndarray:
        """Change one choice: resolution, a block's type / kernel / expansion, a stage's depth or width,
        or the channel multiplier.  A curated member stays one; other architectures get curated values
        for what changes."""
        codes = np.asarray(codes, dtype=np.int64)
        member = self.contains(codes)
        res, stem, head, stages = self.decode(codes)
        cur = self.curated
        multipliers = self._multipliers_of(stem, head, [b[0][3] for b in stages]) if member else []
        for _ in range(1000):
            new = [res, stem, head, [list(b) for b in stages]]
            s = int(rng.integers(self.n_stages))
            blocks = new[3][s]
            move = int(rng.integers(5))
            if move == 0:
                new[0] = _other(cur.resolutions, res, rng)
            elif move == 1:
                j, f = int(rng.integers(len(blocks))), int(rng.integers(3))
                block = list(blocks[j])
                block[f] = _other((cur.blocks, cur.kernels, cur.expansions)[f], block[f], rng)
                blocks[j] = tuple(block)
            elif move == 2:
                d = len(blocks)
                d = _other(cur.depths[s], d, rng) if member else \
                    min(max(d + int(rng.choice((-1, 1))), 1), cur.slots[s])
                c = blocks[-1][3]
                while len(blocks) < d:
                    blocks.append(tuple(_choice(o, rng) for o in (cur.blocks, cur.kernels, cur.expansions)) + (c,))
                del blocks[d:]
            elif move == 3:
                ms = multipliers or range(len(cur.multipliers))
                w = _other(sorted({w for m in ms for w in cur.widths[m][s]}), blocks[0][3], rng)
                blocks[:] = [b[:3] + (w,) for b in blocks]
            elif member:
                m0 = multipliers[0]
                m = _other(range(len(cur.multipliers)), m0, rng)
                new[1], new[2] = cur.stem[m], cur.head[m]
                for st, ws0, ws in zip(new[3], cur.widths[m0], cur.widths[m]):
                    w = ws[min(ws0.index(st[0][3]), len(ws) - 1)]
                    st[:] = [b[:3] + (w,) for b in st]
            out = self.encode(*new)
            if not np.array_equal(out, codes) and (not member or self.contains(out)):
                return out
        raise ValueError("mbv2 space has a single architecture; nothing to mutate into")

    def crossover_codes(self, a, b, rng: np.random.Generator) -> np.ndarray:
        """Resolution, and per stage the depth and each block's type / kernel / expansion, from ``a`` or
        ``b``.  Channels: when both are curated members sharing a multiplier, each stage width (and the
        stem and head they share) from either; otherwise the stem, head and per-stage widths of one parent
        (curated members) or each block's channels from the parent its stage depth came from."""
        ga, gb = self.decode(a), self.decode(b)
        both = bool(self.contains(a)) and bool(self.contains(b))
        pick = lambda: int(rng.integers(2))                                          # noqa: E731
        plans = [self._multipliers_of(g[1], g[2], [st[0][3] for st in g[3]]) for g in (ga, gb)] if both else []
        per_stage = both and bool(set(plans[0]) & set(plans[1]))
        plan = (ga, gb)[pick()]
        stem, head = (plan[1], plan[2]) if both else ((ga, gb)[pick()][1], (ga, gb)[pick()][2])
        stages = []
        for sa, sb in zip(ga[3], gb[3]):
            deep = (sa, sb)[pick()]
            blocks = [(sa, sb)[pick()][j][:3] if j < min(len(sa), len(sb)) else deep[j][:3]
                      for j in range(len(deep))]
            if both:
                w = (sa, sb)[pick()][0][3] if per_stage else plan[3][len(stages)][0][3]
                stages.append([blk + (w,) for blk in blocks])
            else:
                stages.append([blk + (bl[3],) for blk, bl in zip(blocks, deep)])
        return self.encode((ga, gb)[pick()][0], stem, head, stages)


def _among(values: np.ndarray, options) -> np.ndarray:
    """``np.isin`` for a handful of options, without its sort (a few times faster here)."""
    out = np.zeros(values.shape, bool)
    for o in options:
        out |= values == o
    return out


def _choice(options, rng):
    return options[int(rng.integers(len(options)))]


def _other(options, current, rng):
    """A random option other than ``current`` (``current`` itself when it is the only option)."""
    rest = [o for o in options if o != current]
    return _choice(rest, rng) if rest else current


def _block(g: Graph, x: int, typ: int, k: int, e: int, c_out: int, stride: int) -> int:
    """One IBN (``typ`` 0) or fused IBN (``typ`` 1) block; residual when stride 1 and c_in == c_out."""
    c_in = g.shape(x)[0]
    hidden = c_in * e
    if typ == 0:
        h = x if e == 1 else g.act(g.bn(g.conv(x, hidden, 1)), "relu6")
        h = g.act(g.bn(g.conv(h, hidden, k, stride=stride, groups=hidden)), "relu6")
        y = g.bn(g.conv(h, c_out, 1))
    elif e == 1:
        y = g.act(g.bn(g.conv(x, c_out, k, stride=stride)), "relu6")
    else:
        h = g.act(g.bn(g.conv(x, hidden, k, stride=stride)), "relu6")
        y = g.bn(g.conv(h, c_out, 1))
    return g.add([x, y]) if stride == 1 and c_in == c_out else y
