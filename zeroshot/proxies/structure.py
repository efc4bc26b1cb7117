"""Structure of an architecture that network proxies must respect: live ops, canonical op seeds.

* **Live ops.**  A tensor is *structurally zero* when it is a ``zero`` op or computed from structural
  zeros only (an ``add`` drops zero terms; a ``mul`` with a zero factor is zero).  An op is *live* when it
  is not structurally zero and an output depends on it through live ops.  Proxies look at live ops only,
  so a NAS-Bench-201 cell whose dead edges still build conv modules scores like its pruned twin.
* **Canonical seeds.**  Every op gets a 64-bit signature hashed from its attributes, what it reads (its
  ancestry; inputs of ``add`` are unordered) and what reads it (its descendants), over live ops only;
  ties in execution order get an occurrence number.  Parameters are initialised from a generator seeded
  by ``(seed, signature)``, so isomorphic networks get the same weights op for op, whatever the order in
  which the space wrote them.  The geometry beyond square and symmetric (``kw``, ``stride_w``, ``pads``,
  ``dilation``, an upsample's ``mode``) is hashed only where it is set, so the signatures of square,
  symmetric networks are those they always had.

Example
-------
>>> from zeroshot.spaces.ir import Graph
>>> g = Graph(3, 8, 8)
>>> a = g.conv(0, 4, 3)
>>> dead = g.conv(0, 4, 1)                      # read by nothing
>>> arch = g.finish(g.classifier(a, 2))
>>> live_ops(arch).tolist()
[True, False, True, True]
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
from torch import nn

from zeroshot.estimator.timing import replay, upsample_size
from zeroshot.spaces.ir import ADD, CONCAT, CONV, DECONV, LINEAR, MUL, SHUFFLE, ZERO, Arch, Graph

__all__ = ["init_network", "live_ops", "op_signatures", "thin_arch", "weighted_layer"]

_ATTRS = ("kind", "c_in", "c_out", "h_out", "w_out", "k", "stride", "pad", "groups", "act", "flag")
_GEOMETRY = {"kw": 0, "stride_w": 0, "pads": (), "dilation": 1, "mode": ""}   # hashed only when set


def _hash(*parts) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


def _analyse(arch: Arch):
    """Per tensor: structurally zero; the tensor it aliases (an ``add`` with one non-zero term is its
    term); needed by an output."""
    n = len(arch.ops)
    zero = np.zeros(n + 1, bool)
    alias = np.arange(n + 1)
    for i, op in enumerate(arch.ops):
        ins = zero[list(op.inputs)]
        if op.kind == ZERO:
            zero[i + 1] = True
        elif op.kind == ADD:
            zero[i + 1] = ins.all()
            if (~ins).sum() == 1:
                alias[i + 1] = alias[op.inputs[int(np.flatnonzero(~ins)[0])]]
        elif op.kind == MUL:
            zero[i + 1] = ins.any()
        elif op.kind != CONCAT:
            zero[i + 1] = ins.all()
    needed = np.zeros(n + 1, bool)
    needed[list(arch.outputs)] = True
    for i in range(n - 1, -1, -1):
        if needed[i + 1] and not zero[i + 1]:
            for t in arch.ops[i].inputs:
                needed[t] = True
    return zero, alias, needed


def live_ops(arch: Arch) -> np.ndarray:
    """Boolean mask of the live ops (see the module docstring); an ``add`` left with one non-zero term
    is an identity and not live itself."""
    zero, alias, needed = _analyse(arch)
    return needed[1:] & ~zero[1:] & (alias[1:] == np.arange(1, len(arch.ops) + 1))


def op_signatures(arch: Arch) -> list[int]:
    """Canonical 64-bit signature of every op (ops that are not live: hashed from their index only)."""
    zero, alias, needed = _analyse(arch)
    n = len(arch.ops)
    live = needed[1:] & ~zero[1:] & (alias[1:] == np.arange(1, n + 1))
    up = [_hash("input", arch.input_shape)] + [0] * n
    for i, op in enumerate(arch.ops):
        if alias[i + 1] != i + 1:
            up[i + 1] = up[alias[i + 1]]
            continue
        attrs = tuple(getattr(op, a) for a in _ATTRS)
        attrs += tuple((f, v) for f, d in _GEOMETRY.items() if (v := getattr(op, f)) != d)
        ins = [up[t] for t in op.inputs if not zero[t]]
        up[i + 1] = _hash(attrs, sorted(ins) if op.kind == ADD else ins)
    down = [0] * (n + 1)
    readers: list[list] = [[] for _ in range(n + 1)]
    for slot, t in enumerate(arch.outputs):
        readers[t].append(("output", slot))
    for i in range(n - 1, -1, -1):
        if alias[i + 1] != i + 1 and needed[i + 1]:
            readers[alias[i + 1]].extend(readers[i + 1])
        elif live[i]:
            down[i + 1] = _hash(up[i + 1], sorted(readers[i + 1]))
            op = arch.ops[i]
            for slot, t in enumerate(op.inputs):
                if not zero[t]:
                    readers[t].append((up[i + 1], down[i + 1], 0 if op.kind == ADD else slot))
    seen: dict[int, int] = {}
    sigs = []
    for i in range(n):
        if not live[i]:
            sigs.append(_hash("dead", i))
            continue
        base = _hash(up[i + 1], down[i + 1])
        seen[base] = seen.get(base, -1) + 1
        sigs.append(_hash(base, seen[base]))
    return sigs


def init_network(net: nn.Module, arch: Arch, seed: int, scheme: str = "default") -> None:
    """Initialise every parameterised op of ``net`` (a :func:`zeroshot.spaces.builder.build` network) from its
    canonical seed.  ``default``: PyTorch's defaults (Kaiming-uniform with a=sqrt(5), bias
    U(+-1/sqrt(fan_in)), BN weight 1 and bias 0); ``gaussian``: N(0, 1) weights, zero biases (Zen-NAS)."""
    if scheme not in ("default", "gaussian"):
        raise ValueError(f"unknown init scheme {scheme!r}; choose from default, gaussian")
    sigs = op_signatures(arch)
    for sig, layer in zip(sigs, map(weighted_layer, net.layers)):
        params = [p for p in (getattr(layer, "weight", None), getattr(layer, "bias", None)) if p is not None]
        if not params:
            continue
        gen = torch.Generator().manual_seed(_hash(seed, sig) & ((1 << 63) - 1))
        with torch.no_grad():
            if isinstance(layer, nn.BatchNorm2d):
                layer.reset_parameters()
            elif scheme == "gaussian":
                layer.weight.normal_(0.0, 1.0, generator=gen)
                if layer.bias is not None:
                    layer.bias.zero_()
            else:
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=gen)
                if layer.bias is not None:
                    bound = 1.0 / math.sqrt(nn.init._calculate_fan_in_and_fan_out(layer.weight)[0])
                    layer.bias.uniform_(-bound, bound, generator=gen)


def weighted_layer(layer: nn.Module) -> nn.Module:
    """The module holding the parameters of a built op: ``layer`` itself, or the conv / pool behind the
    explicit padding of an asymmetric op (``nn.Sequential(pad, layer)``).

    >>> weighted_layer(nn.Sequential(nn.ConstantPad2d((0, 1, 0, 1), 0.0), nn.Conv2d(1, 2, 3)))
    Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1))
    """
    return layer[-1] if isinstance(layer, nn.Sequential) else layer


def thin_arch(arch: Arch, divisor: int, size: int) -> Arch:
    """``arch`` replayed with every channel count divided by ``divisor`` (at least 1; linear layers
    that write an output keep their width) on a ``size`` x ``size`` input, every op's geometry kept
    (:func:`zeroshot.estimator.timing.replay`).

    Raises ``ValueError`` when a shape does not fit (a spatial size below 1, or branches that disagree).

    >>> g = Graph(3, 16, 16)
    >>> t = g.deconv(g.conv(0, 16, 3, kw=1, stride=2, stride_w=1, dilation=2), 16, 2, stride=2)
    >>> thin = thin_arch(g.finish(g.classifier(t, 10)), 8, 8)
    >>> [(op.name, op.c_out, op.h_out, op.w_out) for op in thin.ops[:2]]
    [('conv', 2, 3, 8), ('deconv', 2, 6, 16)]
    """
    g = Graph(arch.input_shape[0], size, size)
    outputs = set(arch.outputs)

    def width(c: int) -> int:
        return max(1, c // divisor)

    for i, op in enumerate(arch.ops):
        x, c_out, groups = op.inputs[0], None, None
        if op.kind in (CONV, DECONV):
            c_in = g.shape(x)[0]
            groups = 1 if op.groups == 1 else (c_in if op.groups == op.c_in else math.gcd(width(op.groups), c_in))
            c_out = max(groups, width(op.c_out) // groups * groups)
        elif op.kind == LINEAR and i + 1 not in outputs:
            c_out = width(op.c_out)
        elif op.kind == SHUFFLE:
            groups = math.gcd(op.groups, g.shape(x)[0])
        replay(g, op, c_out, groups, upsample_size(op, arch.input_shape[1:], (size, size)))
        if len(g.ops) != i + 1 or min(g.shape(i + 1)[1:]) < 1:
            raise ValueError(f"op {i} ({op.name}) does not fit a {size}x{size} input")
    return g.finish(*arch.outputs, task=arch.task)
