"""Pattern mining: which design choices the best candidates of a screen or search share, as rewrite rules.

The best ``top`` candidates by a metric are compared with every candidate of the run on features of
mbv2-style architectures: per stage, all blocks fused / none fused; every width a multiple of 32 or 64;
each stage's depth against the run's mean; kernel 5 and expansion 6 shares.  A feature held by at least
:data:`SUPPORT` of the best and by at least :data:`LIFT` more of the best than of the run is a pattern;
patterns a rewrite can impose come with its spec (``fuse:stages=1-2``, ``snap:P=32``, ``depth:m=0.75``)
for ``zeroshot rewrite``.

Example
-------
>>> from zeroshot.spaces import get_space
>>> space = get_space("mbv2")
>>> best = ["r224 s32 | f3e1c32 | f3e6c32 | i3e6c64 | i3e6c64 | i3e6c96 | i3e6c160 | i3e6c320 | h1280"] * 4
>>> rest = ["r224 s32 | i3e1c16 | i3e6c24 | i3e6c32 | i3e6c64 | i3e6c96 | i3e6c160 | i3e6c320 | h1280"] * 12
>>> [r["spec"] for r in mine(space, best, best + rest)]
['fuse:stages=1-2', 'snap:P=32']
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from zeroshot.spaces import SearchSpace
from zeroshot.spaces.rewrites import format_ranges

from .errors import InputError

__all__ = ["features", "mine"]

SUPPORT, LIFT = 0.8, 0.2


def features(space: SearchSpace, archs: Sequence[str]) -> dict[str, np.ndarray]:
    """Boolean / numeric features per architecture (rows) of an mbv2-style space."""
    if not hasattr(space, "decode"):
        raise InputError(f"pattern mining reads stages of blocks (mbv2); {space.name!r} has none")
    rows = [space.decode(space.parse(a)) for a in archs]
    n = space.n_stages
    f = {"fused_all": np.array([[all(b[0] == 1 for b in st) for st in r[3]] for r in rows]).reshape(-1, n),
         "fused_none": np.array([[all(b[0] == 0 for b in st) for st in r[3]] for r in rows]).reshape(-1, n),
         "depth": np.array([[len(st) for st in r[3]] for r in rows], float).reshape(-1, n)}
    widths = [[r[1], r[2]] + [b[3] for st in r[3] for b in st] for r in rows]
    for p in (32, 64):
        f[f"mult{p}"] = np.array([all(w % p == 0 for w in ws) for ws in widths])
    blocks = [[b for st in r[3] for b in st] for r in rows]
    f["k5"] = np.array([np.mean([b[1] == 5 for b in bs]) for bs in blocks])
    f["e6"] = np.array([np.mean([b[2] == 6 for b in bs]) for bs in blocks])
    return f


def mine(space: SearchSpace, best: Sequence[str], everyone: Sequence[str]) -> list[dict]:
    """Patterns of ``best`` against ``everyone``: dicts with ``rule`` (words), ``spec`` (a rewrite or
    None), ``best`` and ``all`` (the shares holding it)."""
    fb, fa = features(space, best), features(space, everyone)
    out = []

    def strong(b, a):
        return b >= SUPPORT and b - a >= LIFT

    fused = [s + 1 for s in range(space.n_stages) if strong(fb["fused_all"][:, s].mean(), fa["fused_all"][:, s].mean())]
    plain = [s + 1 for s in range(space.n_stages)
             if strong(fb["fused_none"][:, s].mean(), fa["fused_none"][:, s].mean())]
    if fused:
        share = float(fb["fused_all"][:, [s - 1 for s in fused]].all(1).mean())
        rule = f"fused in stages {format_ranges(fused)}" + (f", not in {format_ranges(plain)}" if plain else "")
        out.append({"rule": rule, "spec": f"fuse:stages={format_ranges(fused)}", "best": share,
                    "all": float(fa["fused_all"][:, [s - 1 for s in fused]].all(1).mean())})
    elif plain:
        out.append({"rule": f"no fused block in stages {format_ranges(plain)}", "spec": None,
                    "best": float(fb["fused_none"][:, [s - 1 for s in plain]].all(1).mean()),
                    "all": float(fa["fused_none"][:, [s - 1 for s in plain]].all(1).mean())})
    for p in (64, 32):
        if strong(fb[f"mult{p}"].mean(), fa[f"mult{p}"].mean()):
            out.append({"rule": f"widths multiples of {p}", "spec": f"snap:P={p}",
                        "best": float(fb[f"mult{p}"].mean()), "all": float(fa[f"mult{p}"].mean())})
            break
    ratio = fb["depth"].mean(0).sum() / fa["depth"].mean(0).sum()
    if abs(ratio - 1) >= 0.125:
        m = round(ratio * 4) / 4
        out.append({"rule": f"{'shallower' if ratio < 1 else 'deeper'} stages: {ratio:.2f}x the run's mean "
                            f"depth ({'/'.join(f'{d:.1f}' for d in fb['depth'].mean(0))})",
                    "spec": f"depth:m={m:g}" if m != 1 else None, "best": ratio, "all": 1.0})
    for key, words in (("k5", "5x5 kernels"), ("e6", "expansion 6")):
        b, a = float(fb[key].mean()), float(fa[key].mean())
        if abs(b - a) >= LIFT:
            out.append({"rule": f"{'more' if b > a else 'fewer'} {words} ({100 * b:.0f}% of blocks vs {100 * a:.0f}%)",
                        "spec": None, "best": b, "all": a})
    return out
