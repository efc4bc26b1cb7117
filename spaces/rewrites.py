"""Expert-in-the-loop rewrites: named, composable transformations of an mbv2-style architecture.

A rewrite spec is a comma-separated list of ``name[:key=value[:key=value]]`` applied left to right, for
example ``fuse:stages=1-3,snap:P=16``.  Stages are numbered from 1 in the order data flows; a stage list
takes numbers, ranges and ``last`` (``1-3``, ``2,4``, ``5-last``).  Rewrites:

- ``fuse:stages=S``: IBN blocks of the stages become fused IBN (the 1x1 expansion folded into the KxK
  conv, which becomes a full conv; same kernel, expansion, width);
- ``dw2conv:stages=S`` (default all): depthwise convs replaced by standard convs; in this space that is the
  fused block with the same expansion (a standard KxK conv taking the block input to the hidden width);
- ``snap:P=N``: every width (stem, blocks, head) to a multiple of ``N`` (make_divisible: nearest multiple,
  at least ``N``, one more step when rounding lost over 10%); ``N`` a power of two 1..1024, as accelerators
  partition channels;
- ``depth:m=X``: stage depths multiplied by ``X`` (ceil, at least 1; EfficientNet's depth multiplier); a
  shallower stage keeps its first blocks, a deeper one repeats its last;
- ``uniform:stages=S`` (default all): every block of a stage gets the stage's output width;
- ``width:m=X``: the stem's and every block's width times ``X`` (make_divisible by 8, as MobileNetV2's
  width multiplier), the head's only when ``X > 1`` (MobileNetV2 keeps 1280 below 1).

The width and depth rules are those of the IR moves (:mod:`zeroshot.spaces.moves`), which make the same
changes on any network's graph: an mbv2 network's IR after a move equals the IR of the rewrite's encoding
(``fuse``, ``snap`` while no block gains a residual, ``width`` with the head kept below 1,
``depth``); ``make_divisible`` is :func:`zeroshot.spaces.curation.make_divisible`.

Every rewrite reports what it changed and which constraint of the space moved its result (a depth
clipped to the space's block slots, a width clipped to the channel limit); :func:`apply_rewrites` adds
when the result leaves the curated set.  Bad specs raise :class:`RewriteError` (a ``ValueError``).

Example
-------
>>> from zeroshot.spaces import get_space
>>> from zeroshot.spaces.mbv2 import MOBILENETV2
>>> space = get_space("mbv2")
>>> codes, notes = apply_rewrites(space, space.parse(MOBILENETV2), "fuse:stages=1-2,snap:P=16")
>>> space.format(codes).split(" | ")[1:4]
['f3e1c16', 'f3e6c32 f3e6c32', 'i3e6c32 i3e6c32 i3e6c32']
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from zeroshot.errors import InputError, UnknownNameError
from zeroshot.registry import Registry

from .base import SearchSpace
from .mbv2 import MAX_CHANNELS, Mbv2Space
from .moves import scale_width, scaled_depth, snap_width

__all__ = ["REWRITES", "Rewrite", "RewriteError", "UnknownRewriteError", "apply_rewrites", "apply_steps",
           "describe_rewrites", "format_ranges", "list_rewrites", "parse_spec", "parse_stages", "register_rewrite"]


class RewriteError(InputError):
    """A rewrite spec that does not apply; the message says what was expected."""


class UnknownRewriteError(UnknownNameError, RewriteError):
    """A rewrite name that is not registered (an :class:`~zeroshot.errors.UnknownNameError` and a
    :class:`RewriteError`)."""


@dataclass(frozen=True)
class Rewrite:
    """A registered rewrite: its function, its parameters and a one-line description."""
    name: str
    fn: Callable                     # fn(space, net, **params) -> list of notes; edits ``net`` in place
    params: dict                     # name -> (parser, default or None when required, help)
    doc: str


#: every rewrite (the built-in ones are defined below)
REWRITES: Registry[Rewrite] = Registry("rewrite", error=UnknownRewriteError)
_ALL = "all"                     # a stage list selecting every stage
_STAGE_ITEM = re.compile(r"(\d+|last)(-(\d+|last))?", re.ASCII)


def register_rewrite(name: str, doc: str, **params):
    """Decorator registering ``fn(space, net, **params) -> notes`` as rewrite ``name``; each parameter is
    ``(parser, default or None when required, help)``."""
    def deco(fn):
        REWRITES.add(name, Rewrite(name, fn, params, doc))
        return fn
    return deco


def list_rewrites() -> list[str]:
    """Names of the registered rewrites, sorted."""
    return REWRITES.names()


def describe_rewrites() -> str:
    """One line per rewrite: its name, parameters and description (the command line's help)."""
    return "\n".join(f"{r.name}:{':'.join(f'{k}=' + v[2] for k, v in r.params.items())}  {r.doc}"
                     for _, r in REWRITES.items())


def parse_stages(text: str, n_stages: int) -> list[int]:
    """Stage numbers (1-based, sorted) of a list like ``1-3``, ``2,4`` or ``5-last``."""
    out = set()
    for item in text.split(","):
        m = _STAGE_ITEM.fullmatch(item.strip())
        if m is None:
            raise RewriteError(f"bad stage list {text!r}: expected numbers, ranges and 'last' like '1-3', "
                               f"'2,4' or '5-last' (stages 1..{n_stages})")
        a = n_stages if m[1] == "last" else int(m[1])
        b = a if m[3] is None else (n_stages if m[3] == "last" else int(m[3]))
        if a > b:
            raise RewriteError(f"stage range {item.strip()!r} is reversed: write it low-high ('{b}-{a}')")
        if not 1 <= a <= b <= n_stages:
            raise RewriteError(f"stage range {item.strip()!r} is out of range: this space has stages 1..{n_stages} "
                               "(use 'last' for the last one)")
        out.update(range(a, b + 1))
    return sorted(out)


def format_ranges(numbers) -> str:
    """Sorted integers as text, runs of consecutive ones as ranges (what :func:`parse_stages` reads).

    >>> format_ranges([1, 2, 3, 5, 7, 8])
    '1-3,5,7-8'
    """
    numbers = [int(n) for n in numbers]
    starts = [i for i, n in enumerate(numbers) if i == 0 or n != numbers[i - 1] + 1]
    runs = [numbers[a:b] for a, b in zip(starts, starts[1:] + [len(numbers)])]
    return ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def _stages_param(text):
    return text                      # resolved in apply_steps, against the space's stage count


def _positive_float(text):
    try:
        v = float(text)
    except ValueError:
        raise RewriteError(f"expected a number like 0.75, got {text!r}") from None
    if not 0 < v <= 8:
        raise RewriteError(f"the multiplier must be in (0, 8], got {text}")
    return v


def _lanes(text):
    if not text.isdigit() or int(text) < 1 or int(text) > 1024 or int(text) & (int(text) - 1):
        raise RewriteError(f"P={text} does not divide the lane groups accelerators use: expected a power of "
                           "two 1..1024 (8, 16, 32, 64 are common)")
    return int(text)


def parse_spec(spec: str) -> list[tuple[str, dict]]:
    """``[(name, raw params)]`` of a spec; a stage list's commas stay with its rewrite."""
    tokens: list[str] = []
    for tok in (t.strip() for t in spec.split(",")):
        if tokens and _STAGE_ITEM.fullmatch(tok) and tokens[-1].rsplit(":", 1)[-1].startswith("stages="):
            tokens[-1] += "," + tok
        elif tok:
            tokens.append(tok)
    if not tokens:
        raise RewriteError(f"empty rewrite spec; expected a list like 'fuse:stages=1-3,snap:P=16' "
                           f"(rewrites: {', '.join(list_rewrites())})")
    out = []
    for tok in tokens:
        name, *args = tok.split(":")
        rw, params = REWRITES.get(name), {}
        for arg in args:
            key, eq, value = arg.partition("=")
            if not eq or key not in rw.params:
                raise RewriteError(f"{name} takes {', '.join(k + '=' + v[2] for k, v in rw.params.items())}; "
                                   f"got {arg!r}")
            params[key] = rw.params[key][0](value)
        for key, (_, default, hint) in rw.params.items():
            if key not in params:
                if default is None:
                    raise RewriteError(f"{name} needs {key}={hint}, like '{name}:{key}={hint.split()[0]}'")
                params[key] = default
        out.append((name, params))
    return out


def apply_rewrites(space: SearchSpace, codes: np.ndarray, spec: str) -> tuple[np.ndarray, list[str]]:
    """Codes after the rewrites of ``spec`` and notes: what each changed, which constraint moved it."""
    steps = apply_steps(space, codes, spec)
    return steps[-1][1], [n for _, _, notes in steps for n in notes]


def apply_steps(space: SearchSpace, codes: np.ndarray, spec: str) -> list[tuple[str, np.ndarray, list[str]]]:
    """``[(step, codes, notes)]``: the input (step ``before``) then the result of each rewrite in turn."""
    if not isinstance(space, Mbv2Space):
        raise RewriteError(f"rewrites work on spaces of stages of IBN / fused blocks (mbv2); "
                           f"{space.name!r} is not one")
    steps = parse_spec(spec)
    codes = np.asarray(codes, dtype=np.int64)
    out = [("before", codes, [])]
    for name, params in steps:
        res, stem, head, stages = space.decode(codes)
        net = {"res": res, "stem": stem, "head": head, "stages": [list(b) for b in stages]}
        if params.get("stages", _ALL) != _ALL:
            params = {**params, "stages": parse_stages(params["stages"], space.n_stages)}
        label = f"{name}:" + ":".join(f"{k}={_show(v)}" for k, v in params.items())
        notes = [f"{label}: {n}" for n in REWRITES.get(name).fn(space, net, **params)]
        new = space.encode(net["res"], net["stem"], net["head"], net["stages"])
        if np.array_equal(new, codes):
            notes.append(f"{label}: no change")
        if space.contains(codes) and not space.contains(new):
            notes.append(f"{label}: the result leaves the curated set of {space!r} (it stays in the raw "
                         "space: any widths, depths up to the slots); screening and search accept it")
        codes = new
        out.append((label, codes, notes))
    return out


def _show(v) -> str:
    if isinstance(v, list):
        return format_ranges(v)
    return f"{v:g}" if isinstance(v, float) else str(v)


def _selected(space, stages) -> list[int]:
    return list(range(1, space.n_stages + 1)) if stages == _ALL else stages


@register_rewrite("fuse", "IBN -> fused IBN (1x1 expansion folded into the KxK conv) in the stages",
                  stages=(_stages_param, None, "1-3 (numbers, ranges, last)"))
def _fuse(space, net, stages):
    changed = []
    for s in _selected(space, stages):
        blocks = net["stages"][s - 1]
        n = sum(b[0] == 0 for b in blocks)
        blocks[:] = [(1, *b[1:]) for b in blocks]
        if n:
            changed.append(f"stage {s}: {n} IBN -> fused")
    return ["; ".join(changed)] if changed else []


register_rewrite("dw2conv", "depthwise -> standard convs (in mbv2: the fused block, same expansion)",
                 stages=(_stages_param, _ALL, "all|1-3"))(_fuse)


def _scale_widths(net, fn, scale_head=True) -> list[str]:
    """Apply ``fn(width)`` to the stem, every block (and the head); notes: the widths that moved, clips."""
    notes = []

    def one(v, where):
        new = fn(v)
        if new > MAX_CHANNELS:
            notes.append(f"{where}: width {new} clipped to the space's channel limit {MAX_CHANNELS}")
            new = MAX_CHANNELS
        return new

    before = [net["stem"], *(b[3] for st in net["stages"] for b in st), net["head"]]
    net["stem"] = one(net["stem"], "stem")
    net["head"] = one(net["head"], "head") if scale_head else net["head"]
    net["stages"] = [[(*b[:3], one(b[3], f"stage {s + 1}")) for b in st] for s, st in enumerate(net["stages"])]
    after = [net["stem"], *(b[3] for st in net["stages"] for b in st), net["head"]]
    moved = sorted({(a, b) for a, b in zip(before, after) if a != b})
    return notes + ([f"widths {', '.join(f'{a}->{b}' for a, b in moved)}"] if moved else [])


@register_rewrite("snap", "every width (stem, blocks, head) to the nearest multiple of P, at least P, one more "
                          "step when rounding lost over 10%", P=(_lanes, None, "16 (power of 2)"))
def _snap(space, net, P):
    return _scale_widths(net, lambda v: min(snap_width(v, P), MAX_CHANNELS // P * P))


@register_rewrite("width", "stem and block widths times m, rounded to a multiple of 8 as for snap (the head "
                           "only when m > 1)",
                  m=(_positive_float, None, "0.75"))
def _width(space, net, m):
    return _scale_widths(net, lambda v: scale_width(v, m), scale_head=m > 1)


@register_rewrite("depth", "stage depths times m (ceil, at least 1)", m=(_positive_float, None, "0.75"))
def _depth(space, net, m):
    notes, changed = [], []
    for s, blocks in enumerate(net["stages"]):
        d = len(blocks)
        want = scaled_depth(d, m)
        new = min(want, space.curated.slots[s])
        if new < want:
            notes.append(f"stage {s + 1} would have {want} blocks; clipped to {new}, the most this space "
                         f"holds there")
        blocks[:] = blocks[:new] + [blocks[-1]] * (new - d)
        if new != d:
            changed.append(f"stage {s + 1} {d}->{new}")
    return notes + ([f"depths {', '.join(changed)}"] if changed else [])


@register_rewrite("uniform", "every block of a stage at the stage's output width",
                  stages=(_stages_param, _ALL, "all|1-3"))
def _uniform(space, net, stages):
    changed = []
    for s in _selected(space, stages):
        blocks = net["stages"][s - 1]
        c = blocks[-1][3]
        if any(b[3] != c for b in blocks):
            changed.append(f"stage {s}: {'/'.join(str(b[3]) for b in blocks)} -> {c}")
        blocks[:] = [(*b[:3], c) for b in blocks]
    return ["; ".join(changed)] if changed else []
