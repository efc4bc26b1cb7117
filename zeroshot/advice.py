"""The seed's expert moves for any network, with their estimated effect on a device (``zs.advise``).

:func:`advise` finds on the network's graph (:mod:`zeroshot.spaces.moves`, so any model works, not only an
mbv2 encoding) the moves the design notes describe, estimates the network after each on the device and ranks
them by latency gained:

- ``snap`` / ``snap-down``: channel counts that are not multiples of the device's lanes P, to the nearest
  multiple (make_divisible: more capacity, the same lane groups) or the one below (no lane wasted; widths
  above P only);
  :attr:`Advice.lanes` lists them with their layers and the lanes each wastes today;
- ``fuse``: inverted bottlenecks whose 1x1 expansion is worth folding into a full KxK conv (early narrow
  high-resolution blocks usually pay, late wide ones do not: :attr:`Advice.blocks` has every block's own
  estimate), each block that pays, and all of them together;
- ``dw2conv``: depthwise convs (outside expanded blocks, where ``fuse`` is the move) worth making standard;
- ``depth``: a depth multiplier (the last residual blocks of each stage removed);
- with a memory budget (``max_params``, ``max_peak_kb``), ``width`` multipliers too, whether each network
  fits, and :attr:`Advice.peak`: the tensors live when the activations peak and the layers writing them.

``advice.apply(i)`` makes move ``i``: the new IR, a torch module built from it and the before / after report.
A network given as a torch module keeps the weights of every layer the move left as it was (its convs, BNs
and linears matched to the trace in the order they run); the layers a move changes get fresh weights, as
does every layer of a network given as IR or an encoding.

Example
-------
>>> import zeroshot as zs
>>> from zeroshot.spaces.mbv2 import MOBILENETV2
>>> advice = advise(MOBILENETV2, space="mbv2", device="mobile-npu-16")
>>> [m.kind for m in advice.moves][:3]
['depth', 'fuse', 'fuse']
>>> done = advice.apply(1)
>>> done.move.title
'fuse all 3 that pay (block 1, block 2, block 7)'
>>> after = zs.estimate(done.arch, device="mobile-npu-16")["latency_ms"][0]
>>> bool(after == advice.table["latency_ms"][1] < advice.before["latency_ms"])
True
"""
from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from zeroshot.estimator.counts import bytes_per_element
from zeroshot.estimator.devices import Device
from zeroshot.spaces import Arch, SearchSpace
from zeroshot.spaces import moves as mv
from zeroshot.spaces.builder import GraphNet, build
from zeroshot.spaces.ir import BN, CONV, DECONV, LINEAR

from .api import estimate, resolve_archs, resolve_device, resolve_space
from .checks import check_int
from .errors import ParameterError
from .table import Table

__all__ = ["DEPTH_MULTIPLIERS", "WIDTH_MULTIPLIERS", "Advice", "Applied", "Move", "advise"]

#: depth multipliers offered (per stage, ceil, at least one block)
DEPTH_MULTIPLIERS = (0.75, 0.5)
#: width multipliers offered under a memory budget (make_divisible 8)
WIDTH_MULTIPLIERS = (0.75, 0.5, 0.35)
_METRICS = ("latency_ms", "params", "macs", "peak_activation_bytes")
_WEIGHTED = (CONV, DECONV, BN, LINEAR)          # op kinds with weights a module carries


@dataclass(frozen=True)
class Move:
    """One move: its ``kind``, what it does (``title``), the network after it (``arch``) and the ops of the
    original it changes (``layers``)."""

    kind: str
    title: str
    arch: Arch
    layers: tuple[int, ...]


@dataclass(frozen=True)
class Applied:
    """A move made: the ``move``, the new ``arch``, its torch ``module`` and the before / after ``report``
    (rows ``before`` and ``after``: latency_ms, params, macs, peak_activation_bytes)."""

    move: Move
    arch: Arch
    module: object
    report: Table

    def __str__(self) -> str:
        rows = list(self.report)
        return "\n".join([f"applied: {self.move.title}"] + [_metrics_line(r["step"], r, rows[0]) for r in rows])


class Advice:
    """The moves for one network on one device, ranked by latency gained (see the module docstring).

    ``moves``: the ranked :class:`Move` list; ``table``: one row per move (``move``, ``kind``, ``latency_ms``,
    ``gain_ms``, ``gain_pct``, ``params``, ``macs``, ``peak_kb``, and ``fits`` under a budget);
    ``before``: the network's own metrics; ``blocks``, ``depthwise``: every candidate block / depthwise
    conv's own estimate; ``lanes``: the channel counts that waste lanes; ``peak``: the tensors at the peak.
    """

    def __init__(self, arch: Arch, device: Device, moves: list[Move], cost: dict, before: dict, tables: dict,
                 budget: dict, weights: dict | None = None):
        self.arch, self.device, self.moves, self.before, self.budget = arch, device, moves, before, budget
        self.blocks, self.depthwise, self.lanes, self.peak = (tables[k] for k in ("blocks", "depthwise", "lanes",
                                                                               "peak"))
        self._weights, self._cost = weights or {}, cost
        lat = cost["latency_ms"]
        columns = {"move": [m.title for m in moves], "kind": [m.kind for m in moves], "latency_ms": lat,
                   "gain_ms": before["latency_ms"] - lat, "gain_pct": 100 * (before["latency_ms"] - lat)
                   / before["latency_ms"], "params": cost["params"], "macs": cost["macs"],
                   "peak_kb": cost["peak_activation_bytes"] / 1024}
        if budget:
            columns["fits"] = _fits(cost, budget)
        self.table = Table(columns)

    def __len__(self) -> int:
        return len(self.moves)

    def apply(self, index: int) -> Applied:
        """Make move ``index`` (0 is the best): the new IR, its torch module, the before / after report."""
        check_int("index", index, 0, f"a move number 0..{len(self) - 1}" if len(self) else
                  "a move number, but no move applies to this network", most=len(self) - 1)
        move = self.moves[index]
        report = {k: [self.before[k], self._cost[k][index]] for k in _METRICS}
        return Applied(move, move.arch, _module(move.arch, self.arch, self._weights),
                       Table({"step": ["before", "after"], **report}))

    def __str__(self) -> str:
        return "\n".join(_report_lines(self))


def advise(model, device, input_shape: Sequence[int] | None = None, max_params: int | None = None,
           max_peak_kb: float | None = None, space: str | SearchSpace | None = None,
           precision: str = "fp32") -> Advice:
    """The design moves for ``model`` on ``device``, ranked by estimated latency gained.

    ``model``: an IR :class:`~zeroshot.spaces.ir.Arch`, an encoding of ``space``, or a torch module (traced
    at ``input_shape``, ``(C, H, W)``); ``device``: a device name, ``.json`` path or object;
    ``max_params`` / ``max_peak_kb``: a memory budget (peak activations in KiB at ``precision``).

    >>> from zeroshot.spaces.mbv2 import MOBILENETV2
    >>> advise(MOBILENETV2, space="mbv2", device="mobile-npu-16").moves[0].kind
    'depth'
    """
    arch, weights = _resolve_model(model, input_shape, space)
    dev = resolve_device(device)
    if dev is None:
        raise ParameterError("device", "a device to estimate latency on (see zeroshot.list_devices())", None)
    budget = _budget(max_params, max_peak_kb)
    before = _cost([arch], dev, precision)
    singles = _singles(arch)
    single_cost = _cost([a for _, _, a in singles], dev, precision) if singles else {}
    tables = {"lanes": _lanes_table(arch, getattr(dev, "lanes", None)), "peak": _peak_table(arch, precision)}
    moves, tables["blocks"], tables["depthwise"] = _single_moves(arch, singles, single_cost, before)
    moves += _channel_moves(arch, getattr(dev, "lanes", None), bool(budget)) + _depth_moves(arch)
    cost = _cost([m.arch for m in moves], dev, precision) if moves else {k: np.zeros(0) for k in _METRICS}
    order = np.argsort(-(before["latency_ms"][0] - cost["latency_ms"]), kind="stable")
    return Advice(arch, dev, [moves[i] for i in order], {k: v[order] for k, v in cost.items()},
                  {k: v[0] for k, v in before.items()}, tables, budget, weights)


# ------------------------------------------------------------------------------------------ inputs
def _resolve_model(model, input_shape, space) -> tuple[Arch, dict]:
    """``(IR, {op index: the torch module holding its weights})`` of what the user gave (no weights for an
    IR or an encoding)."""
    if isinstance(model, (str, Arch)):
        if input_shape is not None:
            raise ParameterError("input_shape", "None for an IR Arch or an encoding (it has its shape)",
                                 input_shape)
        return resolve_archs(model, resolve_space(space)).irs[0], {}
    torch = sys.modules.get("torch")            # a torch module exists only once torch is imported
    if torch is None or not isinstance(model, torch.nn.Module):
        raise ParameterError("model", "an IR Arch, an encoding or a torch module", type(model).__name__)
    if isinstance(model, GraphNet):
        return model.arch, {i: layer for i, layer in enumerate(model.layers)
                            if model.arch.ops[i].kind in _WEIGHTED}
    arch = resolve_archs(model, None, input_shape).irs[0]
    return arch, _traced_weights(model, arch)


def _traced_weights(model, arch: Arch) -> dict:
    """The modules of ``model`` behind the ops with weights of its trace ``arch``, matched in the order they
    run (empty when they do not line up, for example a conv called through ``F.conv2d``)."""
    kinds = {CONV: nn.Conv2d, DECONV: nn.ConvTranspose2d, BN: nn.BatchNorm2d, LINEAR: nn.Linear}
    calls, training = [], {m: m.training for m in model.modules()}
    hooks = [m.register_forward_hook(lambda m, args, out: calls.append(m)) for m in model.modules()
             if isinstance(m, tuple(kinds.values()))]
    weight = next(model.parameters(), torch.zeros(0))
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *arch.input_shape, dtype=weight.dtype, device=weight.device))
    finally:
        for h in hooks:
            h.remove()
        for m, mode in training.items():
            m.training = mode
    ops = [i for i, op in enumerate(arch.ops) if op.kind in kinds]
    if len(ops) != len(calls) or not all(isinstance(m, kinds[arch.ops[i].kind]) for i, m in zip(ops, calls)):
        return {}
    return dict(zip(ops, calls))


def _budget(max_params, max_peak_kb) -> dict:
    for name, value in (("max_params", max_params), ("max_peak_kb", max_peak_kb)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float, np.number))
                                  or not value > 0):
            raise ParameterError(name, "a positive number (or unset: no limit)", value)
    return {k: v for k, v in (("params", max_params), ("peak_kb", max_peak_kb)) if v is not None}


def _cost(archs: list[Arch], device: Device, precision: str) -> dict[str, np.ndarray]:
    t = estimate(archs, device=device, precision=precision)
    return {k: t[k] for k in _METRICS}


def _fits(cost: dict, budget: dict) -> np.ndarray:
    ok = np.ones(len(cost["params"]), bool)
    if "params" in budget:
        ok &= cost["params"] <= budget["params"]
    if "peak_kb" in budget:
        ok &= cost["peak_activation_bytes"] / 1024 <= budget["peak_kb"]
    return ok


# ------------------------------------------------------------------------------------------ moves
def _singles(arch: Arch) -> list[tuple[str, tuple[int, ...], Arch]]:
    """``(kind, layers, network)`` of each block fused alone and each other depthwise conv made standard."""
    out, expanded = [], set()
    for b in filter(mv.fusable, mv.find_blocks(arch)):
        if b.expand is not None:
            expanded.add(b.dw[0])
        out.append(("fuse", (b.expand or ()) + b.dw[:1], mv.fuse(arch, [b])))
    for i, op in enumerate(arch.ops):
        if mv.is_depthwise(op) and i not in expanded:
            out.append(("dw2conv", (i,), mv.dw2conv(arch, [i])))
    return out


def _single_moves(arch: Arch, singles, cost: dict, before: dict) -> tuple[list[Move], Table, Table]:
    """The moves of the singles that pay, each and (for two or more) together, and the tables of every
    single's own estimate."""
    base = before["latency_ms"][0]
    moves, tables = [], {}
    blocks = {b.dw[0]: (j, b) for j, b in enumerate(mv.find_blocks(arch), 1)}
    for kind in ("fuse", "dw2conv"):
        rows = [(layers, float(cost["latency_ms"][i]), new) for i, (k, layers, new) in enumerate(singles)
                if k == kind]
        names = [_single_name(arch, kind, layers, blocks) for layers, _, _ in rows]
        tables[kind] = Table({"where": names, "layers": [" ".join(map(str, ls)) for ls, _, _ in rows],
                              "latency_ms": [lat for _, lat, _ in rows],
                              "change_pct": [100 * (lat - base) / base for _, lat, _ in rows],
                              "pays": [lat < base for _, lat, _ in rows]})
        paying = [(layers, name) for (layers, lat, _), name in zip(rows, names) if lat < base]
        moves += [Move(kind, f"{kind} {name}", new, layers) for (layers, lat, new), name in zip(rows, names)
                  if lat < base]
        if len(paying) > 1:
            layers = tuple(i for ls, _ in paying for i in ls)
            short = ", ".join(name.split(" (")[0] for _, name in paying)
            moves.append(Move(kind, f"{kind} all {len(paying)} that pay ({short})",
                              _make(arch, kind, [ls for ls, _ in paying]), layers))
    return moves, tables["fuse"], tables["dw2conv"]


def _single_name(arch: Arch, kind: str, layers: tuple[int, ...], blocks: dict) -> str:
    if kind == "fuse":
        j, b = blocks[layers[-1]]
        return f"block {j} ({mv.block_label(arch, b)})"
    return mv.op_label(arch, layers[0])


def _make(arch: Arch, kind: str, layer_sets: list[tuple[int, ...]]) -> Arch:
    if kind == "fuse":
        dws = {ls[-1] for ls in layer_sets}
        return mv.fuse(arch, [b for b in mv.find_blocks(arch) if b.dw[0] in dws])
    return mv.dw2conv(arch, [ls[0] for ls in layer_sets])


def _channel_moves(arch: Arch, lanes: int | None, budget: bool) -> list[Move]:
    """Snapping the widths that waste lanes (up and down), and width multipliers under a budget."""
    groups = mv.channel_groups(arch)
    moves = []
    off = [g for g in groups if lanes and g.channels % lanes]
    for kind, rule, how, some in (("snap", mv.snap_width, "to the nearest multiple", off),
                                  ("snap-down", mv.floor_width, "down to a multiple",
                                   [g for g in off if g.channels > lanes])):
        if some:
            after = mv.resize(arch, lambda c, rule=rule: _snapped(c, rule, lanes), groups)
            changed = sorted({(g.channels, after.ops[g.ops[0]].c_out) for g in groups
                              if after.ops[g.ops[0]].c_out != g.channels})
            if changed:                          # an expansion following an unchanged input stays as it is
                moves.append(Move(kind, f"{kind}: widths {how} of P={lanes} ("
                                  + ", ".join(f"{a}->{b}" for a, b in changed) + ")", after,
                                  tuple(i for g in some for i in g.ops)))
    if budget:
        layers = tuple(i for g in groups for i in g.ops)
        moves += [Move("width", f"width multiplier {m:g}", mv.resize(arch, lambda c, m=m: mv.scale_width(c, m),
                                                                     groups), layers)
                  for m in WIDTH_MULTIPLIERS]
    return moves


def _snapped(c: int, rule, lanes: int) -> int:
    """``rule(c, lanes)``, for a width under the lanes only when ``rule`` fills them (rounding down cannot)."""
    return c if rule is mv.floor_width and c < lanes else rule(c, lanes)


def _depth_moves(arch: Arch) -> list[Move]:
    """A depth multiplier per :data:`DEPTH_MULTIPLIERS`: each stage (its first block and the residual units
    after it) keeps its first ``ceil(depth m)`` blocks."""
    out, stages = [], mv.stages(arch)
    for m in DEPTH_MULTIPLIERS:
        cut = [(run, mv.scaled_depth(len(run) + 1, m) - 1) for run in stages]
        cut = [(run, keep) for run, keep in cut if keep < len(run)]
        if cut:
            gone = [u for run, keep in cut for u in run[keep:]]
            out.append(Move("depth", f"depth multiplier {m:g} (stages " + ", ".join(
                f"{_where(arch, run[0].input)}: {len(run) + 1}->{keep + 1}" for run, keep in cut) + ")",
                mv.drop_blocks(arch, gone), tuple(i for u in gone for i in u.ops)))
    return out


def _where(arch: Arch, t: int) -> str:
    """Tensor ``t``'s channels and size: ``24@56x56``."""
    c, h, w = arch.tensor_shape(t)
    return f"{c}@{h}x{w}"


# ------------------------------------------------------------------------------------------ tables
def _lanes_table(arch: Arch, lanes: int | None) -> Table:
    """The channel counts that are not multiples of ``lanes``: their layers and the lanes each wastes."""
    groups = [g for g in mv.channel_groups(arch) if lanes and g.channels % lanes]
    return Table({"channels": [g.channels for g in groups],
                  "wasted_lanes": [-g.channels % lanes for g in groups],
                  "snap": [mv.snap_width(g.channels, lanes) for g in groups],
                  "snap_down": [_snapped(g.channels, mv.floor_width, lanes) for g in groups],
                  "layers": ["; ".join(mv.op_label(arch, i) for i in g.ops) for g in groups]})


def _peak_table(arch: Arch, precision: str) -> Table:
    """The tensors live when the activations peak, largest first, with the op writing each."""
    step, tensors = mv.peak_tensors(arch)
    nbytes = bytes_per_element(precision)
    return Table({"tensor": tensors, "shape": ["x".join(map(str, arch.tensor_shape(t))) for t in tensors],
                  "kb": [math.prod(arch.tensor_shape(t)) * nbytes / 1024 for t in tensors],
                  "written_by": ["input" if t == 0 else mv.op_label(arch, t - 1) for t in tensors],
                  "at": [mv.op_label(arch, step)] * len(tensors)})


def _module(arch: Arch, before: Arch, weights: dict):
    """The torch module of ``arch`` (a move's result on ``before``); each layer a move left as it was gets
    the weights of its module in ``weights`` (op index of ``before`` -> module), the others fresh ones."""
    net = build(arch)
    for op, layer, i in zip(arch.ops, net.layers, arch.meta["from_ops"]):
        if i in weights and _same_layer(op, before.ops[i]):
            _copy_tensors(layer, weights[i])
    return net


def _copy_tensors(dst, src) -> None:
    """The parameters and buffers of ``src`` into those of ``dst`` with the same name and shape."""
    theirs = {n.rsplit(".", 1)[-1]: t for n, t in (*src.named_parameters(), *src.named_buffers())}
    with torch.no_grad():
        for n, t in (*dst.named_parameters(), *dst.named_buffers()):
            other = theirs.get(n.rsplit(".", 1)[-1])
            if other is not None and other.shape == t.shape:
                t.copy_(other)


def _same_layer(a, b) -> bool:
    """Ops with the same parameters' shapes (their inputs may be renumbered)."""
    return dataclasses.replace(a, inputs=()) == dataclasses.replace(b, inputs=())


# ------------------------------------------------------------------------------------------ report
def _metrics_line(step: str, row: dict, base: dict) -> str:
    cells = []
    for k, unit in (("latency_ms", "ms"), ("params", "params"), ("macs", "MACs"), ("peak_activation_bytes", "KiB")):
        v, v0 = row[k], base[k]
        text = f"{v:.3f} {unit}" if k == "latency_ms" else f"{v / 1024:,.0f} {unit}" if unit == "KiB" \
            else f"{int(v):,} {unit}"
        cells.append(text + (f" ({100 * (v - v0) / v0:+.1f}%)" if step != "before" and v0 else ""))
    return f"  {step:<7} " + ", ".join(cells)


def _report_lines(advice: Advice) -> list[str]:
    b = advice.before
    lines = [f"# on {advice.device.name}: {b['latency_ms']:.3f} ms, {int(b['params']):,} params, "
             f"{int(b['macs']):,} MACs, peak {b['peak_activation_bytes'] / 1024:,.0f} KiB"]
    if not len(advice):
        lines.append("no move applies to this network")
    for i, row in enumerate(advice.table, 1):
        fits = "" if "fits" not in row else ("  fits" if row["fits"] else "  over budget")
        slower = "" if row["gain_ms"] > 0 else "  (no faster on this device)"
        lines.append(f"{i:>3}. {row['latency_ms']:.3f} ms ({-row['gain_pct']:+.1f}%)  {int(row['params']):,} params"
                     f"  peak {row['peak_kb']:,.0f} KiB{fits}  {row['move']}{slower}")
    if len(advice.blocks):
        lines.append("fusing each inverted bottleneck alone:")
        lines += [f"  {r['change_pct']:+6.1f}%  {r['where']}" for r in advice.blocks]
    if len(advice.depthwise):
        lines.append("each other depthwise conv made standard:")
        lines += [f"  {r['change_pct']:+6.1f}%  {r['where']}" for r in advice.depthwise]
    if len(advice.lanes):
        lines.append(f"channel counts wasting lanes of P={advice.device.lanes}:")
        lines += [f"  {r['channels']} channels waste {r['wasted_lanes']} lanes: {r['layers']}" for r in advice.lanes]
    if advice.budget:
        lines.append(f"activation peak at {advice.peak['at'][0]}: "
                     + "; ".join(f"{r['shape']} ({r['kb']:,.0f} KiB, {r['written_by']})" for r in advice.peak))
    return lines
