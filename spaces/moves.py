"""Design moves on the IR: the seed's expert rewrites for any network's graph.

The patterns are found on the graph, not on a space's codes, so any :class:`~zeroshot.spaces.ir.Arch` works
(a built-in space's network, a declared space's, a traced torch model):

- :func:`find_blocks`: depthwise blocks, ``[1x1 expand conv -> BN -> act ->] KxK depthwise conv -> BN ->
  act -> 1x1 project conv -> BN [-> residual add]`` (an inverted bottleneck, IBN, when the expansion is there);
- :func:`channel_groups`: the channel counts a move may change, each with the layers that must change together
  (a residual add or a squeeze-excite gate ties its inputs; input, outputs, grouped convs stay fixed).

The moves return a new ``Arch`` (shapes re-inferred downstream):

- :func:`fuse`: an IBN's 1x1 expansion folded into its KxK conv, which becomes a full conv; a block without
  expansion made one full conv (the mbv2 fused block, both); :func:`dw2conv`: a depthwise conv made a
  standard conv of the same shape;
- :func:`resize` with :func:`snap_width` / :func:`floor_width` / :func:`scale_width`: widths to multiples
  of P, or times a width multiplier (expansion ratios kept; :func:`set_channels` sets any widths);
- :func:`drop_blocks` with :func:`stages` (runs of :func:`residuals`) and :func:`scaled_depth`: a depth
  multiplier (the last residual units of each stage removed, as the mbv2 ``depth`` rewrite keeps the first
  blocks).

The width and depth rules are the ones the mbv2 rewrites (:mod:`zeroshot.spaces.rewrites`) use: an mbv2
network's IR after :func:`resize` (snap, width), :func:`drop_blocks` (depth) or :func:`fuse` equals the IR
of the same rewrite's encoding.
:func:`peak_tensors` lists the tensors live when the activation memory peaks (the estimator's rule).

Example
-------
>>> from zeroshot.spaces import get_space
>>> from zeroshot.spaces.mbv2 import MOBILENETV2
>>> arch = get_space("mbv2").to_ir(MOBILENETV2)
>>> blocks = find_blocks(arch)
>>> len(blocks), sum(b.expand is not None for b in blocks), sum(b.add is not None for b in blocks)
(17, 16, 10)
>>> fused = fuse(arch, blocks[1:3])
>>> arch.params < fused.params, len(fused.ops) == len(arch.ops) - 6
(True, True)
>>> [g.channels for g in channel_groups(arch) if g.channels % 16]
[24]
>>> [len(s) for s in stages(arch)]          # residual units after each stage's first block
[1, 2, 3, 2, 2]
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from .curation import make_divisible
from .ir import (ACT, ADD, AVGPOOL, BN, CONCAT, CONV, DECONV, GAP, KIND_NAMES, LINEAR, MAXPOOL, MUL, SHUFFLE, UPSAMPLE,
                 ZERO, Arch, Op)

__all__ = ["Block", "ChannelGroup", "MoveError", "Residual", "block_label", "channel_groups", "drop_blocks",
           "dw2conv", "find_blocks", "floor_width", "fusable", "fuse", "is_depthwise", "make_divisible", "op_label",
           "peak_tensors", "residuals", "resize", "scale_width", "scaled_depth", "set_channels", "snap_width",
           "stages"]

#: op kinds whose output has the channels of their (first) input
_FOLLOW = (BN, ACT, ADD, MUL, AVGPOOL, MAXPOOL, GAP, UPSAMPLE, ZERO, SHUFFLE)


class MoveError(ValueError):
    """A move that does not apply to the graph (an op kind whose channels it cannot re-infer)."""


# ------------------------------------------------------------------------------------------ rules
def snap_width(c: int, p: int) -> int:
    """``c`` to a multiple of ``p`` by the reference rounding (:func:`make_divisible`)."""
    return make_divisible(c, p)


def floor_width(c: int, p: int) -> int:
    """``c`` down to a multiple of ``p`` (at least ``p``): the lanes below, none wasted."""
    return max(p, c // p * p)


def scale_width(c: int, m: float) -> int:
    """``c`` times a width multiplier ``m`` (make_divisible by 8, as MobileNetV2's)."""
    return make_divisible(c * m, 8)


def scaled_depth(d: int, m: float) -> int:
    """A depth ``d`` times a depth multiplier ``m``: ceil, at least 1 (EfficientNet's)."""
    return max(1, math.ceil(d * m - 1e-9))


# ------------------------------------------------------------------------------------------ graph
def is_depthwise(op: Op) -> bool:
    """A conv with one group per channel (more than one channel)."""
    return op.kind == CONV and op.groups == op.c_in == op.c_out > 1


def _readers(arch: Arch) -> list[list[int]]:
    """``readers[t]``: the ops reading tensor ``t`` (a network output counts one more, as -1)."""
    out: list[list[int]] = [[] for _ in range(len(arch.ops) + 1)]
    for i, op in enumerate(arch.ops):
        for t in op.inputs:
            out[t].append(i)
    for t in arch.outputs:
        out[t].append(-1)
    return out


def _next(arch: Arch, readers, i: int, kind: int) -> int | None:
    """The op reading op ``i``'s output when it is its only reader and of ``kind``."""
    r = readers[i + 1]
    return r[0] if len(r) == 1 and r[0] >= 0 and arch.ops[r[0]].kind == kind else None


def _sets_channels(op: Op) -> bool:
    """A conv or transposed conv of one group: its output channels are its own choice."""
    return op.kind in (CONV, DECONV) and op.groups == 1


def _is_pointwise(op: Op) -> bool:
    return op.kind == CONV and op.kernel == (1, 1) and op.groups == 1 and op.strides == (1, 1)


@dataclass(frozen=True)
class Block:
    """A depthwise block, as op indices: its optional ``expand`` (conv, [BN], act), its ``dw`` (conv, [BN],
    act), its squeeze-excite gate ``se`` (GAP ... MUL, or empty), its ``project`` (conv, [BN]) and residual
    ``add`` (or None); ``input`` is the tensor it reads and ``output`` the tensor it writes."""

    expand: tuple[int, ...] | None
    dw: tuple[int, ...]
    se: tuple[int, ...]
    project: tuple[int, ...]
    add: int | None
    input: int
    output: int

    @property
    def ops(self) -> tuple[int, ...]:
        """Every op of the block."""
        return (*(self.expand or ()), *self.dw, *self.se, *self.project, *(() if self.add is None else (self.add,)))


def find_blocks(arch: Arch) -> list[Block]:
    """Every depthwise block of ``arch`` (module docstring; BNs optional, a squeeze-excite gate allowed
    between the depthwise conv and the projection), in execution order; every tensor inside a block is
    read only inside it."""
    readers = _readers(arch)
    out = []
    for d, op in enumerate(arch.ops):
        dw = _conv_unit(arch, readers, d, act=True) if is_depthwise(op) else None
        if dw is None:
            continue
        se = _squeeze_excite(arch, readers, dw[-1])
        p = _next(arch, readers, se[-1] if se else dw[-1], CONV)
        if p is None or not _is_pointwise(arch.ops[p]):
            continue
        project = _conv_unit(arch, readers, p, act=False)
        expand = _expansion(arch, readers, op.inputs[0])
        x = op.inputs[0] if expand is None else arch.ops[expand[0]].inputs[0]
        add = _residual(arch, readers, project[-1], x)
        out.append(Block(expand, dw, se, project, add, x, 1 + (project[-1] if add is None else add)))
    return out


def _conv_unit(arch: Arch, readers, conv: int, act: bool) -> tuple[int, ...] | None:
    """``(conv, [BN], [act])``: op ``conv``, the BN reading it alone if any, then (when ``act``) the
    activation that must follow; None when it does not."""
    ops = (conv,) + tuple(i for i in [_next(arch, readers, conv, BN)] if i is not None)
    if not act:
        return ops
    a = _next(arch, readers, ops[-1], ACT)
    return None if a is None else ops + (a,)


def _squeeze_excite(arch: Arch, readers, a: int) -> tuple[int, ...]:
    """The ops of a squeeze-excite gate on op ``a``'s output (a GAP, the chain it feeds, the MUL of the
    output by that gate), or ``()`` when op ``a``'s output is not gated."""
    r = readers[a + 1]
    kinds = sorted((arch.ops[i].kind, i) for i in r if i >= 0)
    if len(r) != 2 or [k for k, _ in kinds] != sorted((GAP, MUL)):
        return ()
    gap, mul = (i for _, i in sorted(kinds, key=lambda x: x[0] != GAP))
    gate = [t for t in arch.ops[mul].inputs if t != a + 1]
    chain, t = [], gate[0] if len(gate) == 1 else gap + 1
    while t - 1 > gap and len(readers[t]) == 1 and len(arch.ops[t - 1].inputs) == 1:
        chain.append(t - 1)
        t = arch.ops[t - 1].inputs[0]
    return (gap, *reversed(chain), mul) if t == gap + 1 and len(readers[t]) == 1 and chain else ()


def _expansion(arch: Arch, readers, t: int) -> tuple[int, ...] | None:
    """``(conv, [BN], act)`` of a 1x1 expansion writing tensor ``t`` for its depthwise conv alone, or None."""
    if t == 0 or len(readers[t]) != 1 or arch.ops[t - 1].kind != ACT:
        return None
    ops = [t - 1]
    while len(ops) < 3:
        i = arch.ops[ops[-1]].inputs[0] - 1
        if i < 0 or len(readers[i + 1]) != 1 or arch.ops[i].kind not in (BN, CONV) or len(arch.ops[i].inputs) != 1:
            return None
        ops.append(i)
        if arch.ops[i].kind == CONV:
            return tuple(reversed(ops)) if _is_pointwise(arch.ops[i]) else None
    return None


def _residual(arch: Arch, readers, last: int, x: int) -> int | None:
    """The add of op ``last``'s output and tensor ``x`` (two inputs), when ``last`` has it as only reader."""
    a = _next(arch, readers, last, ADD)
    return a if a is not None and sorted(arch.ops[a].inputs) == sorted((x, last + 1)) else None


@dataclass(frozen=True)
class Residual:
    """A residual unit ``add(x, branch(x))`` (then an activation like the one writing ``x``, as ResNet's), as
    op indices: ``ops`` (the branch, the add, that activation), ``input`` (tensor x) and ``output``."""

    ops: tuple[int, ...]
    input: int
    output: int


def residuals(arch: Arch) -> list[Residual]:
    """Every residual unit whose branch reads only its input and its own tensors (so that removing it
    leaves the network valid), in execution order: a depthwise block with its add, a ResNet block, ..."""
    readers = _readers(arch)
    out = []
    for a, op in enumerate(arch.ops):
        x, y = sorted(op.inputs) if op.kind == ADD and len(op.inputs) == 2 else (0, 0)
        if x >= y or readers[y] != [a] or not all(
                min(arch.ops[i].inputs) >= x and all(r == a or x <= r < y for r in readers[i + 1])
                for i in range(x, y)):
            continue
        ops = (*range(x, y), a)
        act = _next(arch, readers, a, ACT)
        if act is not None and x and arch.ops[x - 1].kind == ACT and arch.ops[x - 1].act == arch.ops[act].act:
            ops += (act,)
        out.append(Residual(ops, x, ops[-1] + 1))
    return out


def stages(arch: Arch) -> list[list[Residual]]:
    """The residual units in stages: runs of units each reading the one before; a stage's depth is its run
    plus the block before it, which changes the shape (MobileNet's and ResNet's stages, on the graph)."""
    out: list[list[Residual]] = []
    for r in residuals(arch):
        if out and r.input == out[-1][-1].output:
            out[-1].append(r)
        else:
            out.append([r])
    return out


# ------------------------------------------------------------------------------------------ replay
def _replay(arch: Arch, drop: Iterable[int] = (), alias: dict[int, int] | None = None,
            edits: dict[int, dict] | None = None, channels: dict[int, int] | None = None) -> Arch:
    """``arch`` rebuilt op by op: ops in ``drop`` left out (a tensor they wrote read through ``alias``: old
    tensor -> the old tensor standing for it), ``edits[i]`` field overrides of op ``i`` (``inputs`` in old
    tensor ids), ``channels[i]`` op ``i``'s new output channels; every shape re-inferred from the inputs.
    ``meta["from_ops"]`` of the result: the op of ``arch`` each op comes from."""
    drop, alias, edits, channels = set(drop), alias or {}, edits or {}, channels or {}
    tmap: dict[int, int] = {0: 0}
    ops: list[Op] = []

    def new_id(t: int) -> int:
        while t not in tmap and t in alias:
            t = alias[t]
        return tmap[t]

    def shape(t: int) -> tuple[int, int, int]:
        return arch.input_shape if t == 0 else (ops[t - 1].c_out, ops[t - 1].h_out, ops[t - 1].w_out)

    kept = [i for i in range(len(arch.ops)) if i not in drop]
    for i in kept:
        op = dataclasses.replace(arch.ops[i], **edits.get(i, {}))
        inputs = tuple(new_id(t) for t in op.inputs)
        ops.append(_reshaped(op, inputs, [shape(t) for t in inputs], channels.get(i)))
        tmap[i + 1] = len(ops)
    return Arch(tuple(ops), arch.input_shape, tuple(new_id(t) for t in arch.outputs), arch.task,
                {**arch.meta, "from_ops": tuple(kept)})


def _reshaped(op: Op, inputs: tuple[int, ...], shapes: list[tuple[int, int, int]], c_out: int | None) -> Op:
    """``op`` reading ``inputs`` of ``shapes``, writing ``c_out`` channels when given (a conv or linear)."""
    c_in, h_in, w_in = shapes[0]
    if op.kind in (ADD, MUL) and len({s[0] for s in shapes}) > 1:
        raise MoveError(f"op {op.name} would read {[s[0] for s in shapes]} channels: its inputs were resized apart")
    kw = dict(inputs=inputs, c_in=c_in, h_in=h_in, w_in=w_in)
    if op.kind == CONV and is_depthwise(op):
        return dataclasses.replace(op, c_out=c_in, groups=c_in, **kw)
    if op.kind == LINEAR:                        # a linear layer reading a (c, h, w) tensor flattens it
        kw["c_in"] = math.prod(shapes[0])
    if _sets_channels(op) or op.kind == LINEAR:
        return dataclasses.replace(op, c_out=op.c_out if c_out is None else c_out, **kw)
    if op.kind in _FOLLOW:
        return dataclasses.replace(op, c_out=c_in, **kw)
    if op.kind == CONCAT:
        return dataclasses.replace(op, c_out=sum(s[0] for s in shapes), **{**kw, "c_in": sum(s[0] for s in shapes)})
    if c_in != op.c_in:
        raise MoveError(f"op {op.name} cannot take {c_in} channels instead of {op.c_in}")
    return dataclasses.replace(op, **kw)


# ------------------------------------------------------------------------------------------ moves
def fusable(b: Block) -> bool:
    """Whether :func:`fuse` applies to block ``b``: an IBN, or a depthwise-separable block without a gate
    whose projection has a BN (a projection without one, like a detection head's predictor, keeps its
    linear output)."""
    return b.expand is not None or (not b.se and len(b.project) == 2)


def fuse(arch: Arch, blocks: Sequence[Block]) -> Arch:
    """``arch`` with ``blocks`` fused (the mbv2 fused block): an IBN's 1x1 expansion folded into the KxK
    conv, a full conv from the block input to the hidden width (same kernel, stride); a block without
    expansion (depthwise-separable) made one full KxK conv to the projection's width, with the depthwise
    conv's BN and activation (its projection dropped); blocks :func:`fusable` rejects are skipped."""
    drop, alias, edits, widths = [], {}, {}, {}
    for b in filter(fusable, blocks):
        edits[b.dw[0]] = {"inputs": (b.input,), "groups": 1}
        if b.expand is not None:
            drop += b.expand
        else:
            drop += b.project
            alias[b.project[-1] + 1] = b.dw[-1] + 1
            widths[b.dw[0]] = arch.ops[b.project[0]].c_out
    return _replay(arch, drop, alias, edits, widths)


def dw2conv(arch: Arch, convs: Iterable[int]) -> Arch:
    """``arch`` with the depthwise convs ``convs`` (op indices) made standard convs of the same shape."""
    return _replay(arch, edits={i: {"groups": 1} for i in convs})


def drop_blocks(arch: Arch, units: Sequence[Residual]) -> Arch:
    """``arch`` without the residual ``units`` (each one's output becomes its input)."""
    return _replay(arch, [i for u in units for i in u.ops], alias={u.output: u.input for u in units})


def set_channels(arch: Arch, widths: dict[int, int]) -> Arch:
    """``arch`` with the ops of ``widths`` (op index -> output channels) at their new width; the layers
    reading them follow (give every op of a :class:`ChannelGroup` the same width)."""
    return _replay(arch, channels=widths)


def resize(arch: Arch, rule: Callable[[int], int], groups: Sequence[ChannelGroup] | None = None) -> Arch:
    """``arch`` with every free channel group (of ``groups``, default :func:`channel_groups`) at ``rule(c)``
    channels; an IBN's expansion keeps its ratio (hidden = ratio x the new block input) when it is a whole
    number, as the mbv2 rewrites keep a block's expansion."""
    groups = channel_groups(arch) if groups is None else groups
    ratio = {b.expand[0]: (b, arch.ops[b.dw[0]].c_in // arch.tensor_shape(b.input)[0])
             for b in find_blocks(arch) if b.expand is not None
             and arch.ops[b.dw[0]].c_in % arch.tensor_shape(b.input)[0] == 0}
    widths = {i: rule(g.channels) for g in groups if not set(g.ops) & set(ratio) for i in g.ops}
    first = set_channels(arch, widths)
    for g in groups:
        for block, e in [ratio[i] for i in g.ops if i in ratio][:1]:
            widths.update(dict.fromkeys(g.ops, first.tensor_shape(block.input)[0] * e))
    return set_channels(arch, widths)


# ------------------------------------------------------------------------------------------ channels
@dataclass(frozen=True)
class ChannelGroup:
    """Ops (convs, linears) whose output ``channels`` a move may change, together (tied by adds / gates)."""

    ops: tuple[int, ...]
    channels: int


def channel_groups(arch: Arch) -> list[ChannelGroup]:
    """The free channel counts of ``arch``: groups of convs / linears whose outputs meet at an add or a
    gate, minus those tied to the input, a network output, a concat, a grouped conv, a shuffle or an op kind
    the moves cannot re-shape; in execution order of their first op."""
    parent: dict[int, int] = {}

    def root(s: int) -> int:
        while parent.setdefault(s, s) != s:
            s = parent[s]
        return s

    fixed: set[int] = {-1}                       # -1: the input's channels
    source = [-1]                                # source[t]: the op setting tensor t's channels
    for i, op in enumerate(arch.ops):
        src = [root(source[t]) for t in op.inputs]
        if op.kind == LINEAR or _sets_channels(op):
            source.append(i)
        elif op.kind in _FOLLOW or is_depthwise(op):
            for s in src[1:]:
                parent[root(s)] = src[0]
            source.append(src[0])
            if op.kind == SHUFFLE:
                fixed.add(src[0])
        else:                                    # concat, grouped conv, another kind: tied as they are
            fixed.update(src)
            fixed.add(-2 - i)
            source.append(-2 - i)
    fixed.update(source[t] for t in arch.outputs)
    fixed = {root(s) for s in fixed}
    groups: dict[int, list[int]] = {}
    for i, op in enumerate(arch.ops):
        if source[i + 1] == i and root(i) not in fixed:
            groups.setdefault(root(i), []).append(i)
    return sorted((ChannelGroup(tuple(v), arch.ops[v[0]].c_out) for v in groups.values()), key=lambda g: g.ops)


# ------------------------------------------------------------------------------------------ memory
def peak_tensors(arch: Arch) -> tuple[int, list[int]]:
    """``(step, tensors)``: the op step where live activations peak and the tensors live then, largest first
    (a tensor lives from its writer through its last reader, outputs to the end: the estimator's rule)."""
    n = len(arch.ops)
    last = list(range(-1, n))
    for i, op in enumerate(arch.ops):
        for t in op.inputs:
            last[t] = i
    for t in arch.outputs:
        last[t] = n
    last[0] = max(last[0], 0)
    size = [math.prod(arch.tensor_shape(t)) for t in range(n + 1)]
    freed = [0] * (n + 1)                        # freed[i]: the sizes of the tensors last read at step i
    for t in range(n + 1):
        freed[last[t]] += size[t]
    best, step, live = -1, 0, size[0]
    for i in range(n):
        live += size[i + 1]
        if live > best:
            best, step = live, i
        live -= freed[i]
    return step, sorted((t for t in range(step + 2) if last[t] >= step), key=lambda t: -size[t])


# ------------------------------------------------------------------------------------------ labels
def op_label(arch: Arch, i: int) -> str:
    """A short description of op ``i``: its index, kind, kernel, channels and output size."""
    op = arch.ops[i]
    what = KIND_NAMES[op.kind]
    if op.kind == CONV:
        what = "{}x{} {}".format(*op.kernel, "dw" if is_depthwise(op) else "conv")
    return f"op {i} {what} {op.c_in}->{op.c_out} @{op.h_out}x{op.w_out}"


def block_label(arch: Arch, b: Block) -> str:
    """A block's shape: ``k3 e6 24->32 s2 @56x56`` (kernel, expansion, in -> out channels, stride, input
    size), ``+se`` with a squeeze-excite gate and ``+res`` for a residual block."""
    dw, c_in = arch.ops[b.dw[0]], arch.tensor_shape(b.input)
    e = dw.c_in / c_in[0] if b.expand is not None else 1
    return (f"k{dw.k} e{e:.3g} {c_in[0]}->{arch.ops[b.project[0]].c_out} s{dw.stride} @{c_in[1]}x{c_in[2]}"
            + (" +se" if b.se else "") + (" +res" if b.add is not None else ""))
