"""NAS-Bench-201: 6 edges x 5 operations = 15,625 cells on the published skeleton (C=16, N=5).

Encoding: the standard string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.  Codes: the 6 edge choices in
string order, each an index into :data:`OPS`.

Example
-------
>>> space = Nb201Space()
>>> s = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
>>> space.to_ir(s).params
802426
"""
from __future__ import annotations

import functools
import itertools
import sys
from typing import Iterator

import numpy as np

from zeroshot.errors import ParameterError

from . import register_space
from .base import MAX_RESOLUTION, EncodingError, ProductSpace
from .ir import Arch, Graph
from .shared_data import shared_data

__all__ = ["EDGES", "Nb201Space", "OPS", "iso_key", "official_codes"]

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))   # (target node, source node), string order
_OP_INDEX = {op: i for i, op in enumerate(OPS)}


@register_space
class Nb201Space(ProductSpace):
    """NAS-Bench-201 cells in the standard network skeleton (see the module docstring)."""

    name = "nb201"
    description = "NAS-Bench-201 cells (C=16, N=5, 32x32 input), the published skeleton"
    code_length = 6

    def __init__(self, classes: int = 10, channels: int = 16, cells: int = 5, resolution: int = 32):
        for name, value in (("classes", classes), ("channels", channels), ("cells", cells),
                            ("resolution", resolution)):
            if value < 1:
                raise ParameterError(name, "positive", value)
        if resolution > MAX_RESOLUTION:
            raise ParameterError("resolution", f"at most {MAX_RESOLUTION} pixels", resolution)
        if resolution % 4:
            raise ParameterError("resolution", "a multiple of 4 (two stride-2 reductions)", resolution,
                                 fix="e.g. 32 (CIFAR) or 16 (ImageNet16-120)")
        self.classes, self.channels, self.cells, self.resolution = classes, channels, cells, resolution
        self.cards = np.full(6, len(OPS), dtype=np.int64)

    def parse(self, text: str) -> np.ndarray:
        text = text.strip()
        nodes = text.split("+")
        if len(nodes) != 3:
            raise EncodingError(f"expected 3 nodes separated by '+' like "
                                f"'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|', got {len(nodes)} in {text!r}")
        codes = []
        for j, node in enumerate(nodes, 1):
            if not (node.startswith("|") and node.endswith("|")) or len(node) < 2:
                raise EncodingError(f"node {j} must be written between '|' characters, got {node!r}")
            edges = node[1:-1].split("|")
            if len(edges) != j:
                raise EncodingError(f"node {j} must have {j} input edge(s), got {len(edges)} in {node!r}")
            for i, edge in enumerate(edges):
                op, sep, src = edge.partition("~")
                if op not in _OP_INDEX:
                    raise EncodingError(f"unknown operation {op!r} on node {j}; choose from {', '.join(OPS)}")
                if sep != "~" or src != str(i):
                    raise EncodingError(f"edge {edge!r} of node {j} must read node {i} ('{op}~{i}')")
                codes.append(_OP_INDEX[op])
        return np.array(codes, dtype=np.int64)

    def format(self, codes) -> str:
        ops = [OPS[int(c)] for c in codes]
        return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)

    def build_ir(self, codes) -> Arch:
        codes = [int(c) for c in codes]
        if len(codes) != 6 or not all(0 <= c < len(OPS) for c in codes):
            raise EncodingError(f"nb201 codes are 6 integers in 0..4, got {codes}")
        g = Graph(3, self.resolution, self.resolution)
        t = 0
        for key in self._segments(codes):
            t = self._lower_segment(g, t, key)
        return g.finish(t, space=self.name)

    # Segments: stem, then per stage (reduction +) `cells` cells, then the head.  A key packs
    # (segment type, stage, cell code index) as type * 10**6 + stage * 10**5 + cell index.
    _STEM, _CELL, _REDUCTION, _HEAD = range(4)

    def _segments(self, codes) -> list[int]:
        cell = sum(int(c) * 5 ** (5 - i) for i, c in enumerate(codes))
        keys = [self._STEM * 10**6]
        for stage in range(3):
            if stage:
                keys.append(self._REDUCTION * 10**6 + stage * 10**5)
            keys += [self._CELL * 10**6 + stage * 10**5 + cell] * self.cells
        return keys + [self._HEAD * 10**6]

    def segment_keys(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes, dtype=np.int64).reshape(-1, 6)
        cell = codes @ (5 ** np.arange(5, -1, -1, dtype=np.int64))
        template = np.array(self._segments([0] * 6), dtype=np.int64)
        keys = np.repeat(template[None, :], len(codes), axis=0)
        is_cell = template // 10**6 == self._CELL
        keys[:, is_cell] += cell[:, None]
        return keys

    def segment_ir(self, key: int) -> Arch:
        kind, stage = int(key) // 10**6, (int(key) // 10**5) % 10
        if kind == self._STEM:
            ch, hw = 3, self.resolution
        elif kind == self._HEAD:
            ch, hw = 4 * self.channels, self.resolution // 4
        else:       # a reduction reads the previous stage's tensor
            prev = stage - (kind == self._REDUCTION)
            ch, hw = self.channels * 2 ** prev, self.resolution // 2 ** prev
        g = Graph(ch, hw, hw)
        return g.finish(self._lower_segment(g, 0, key), space=self.name)

    def _lower_segment(self, g: Graph, t: int, key: int) -> int:
        kind, rest = divmod(int(key), 10**6)
        stage, cell = divmod(rest, 10**5)
        c = self.channels * 2 ** stage
        if kind == self._STEM:
            return g.bn(g.conv(t, self.channels, 3))
        if kind == self._REDUCTION:
            return self._reduction(g, t, c)
        if kind == self._CELL:
            codes = [(cell // 5 ** (5 - i)) % 5 for i in range(6)]
            return self._cell(g, t, c, codes)
        return g.classifier(g.act(g.bn(t), "relu"), self.classes)

    @staticmethod
    def _cell(g: Graph, x: int, c: int, codes) -> int:
        nodes = [x]
        for j in (1, 2, 3):
            terms = []
            for e, (target, i) in enumerate(EDGES):
                if target != j:
                    continue
                op = OPS[codes[e]]
                if op == "skip_connect":
                    terms.append(nodes[i])
                elif op in ("nor_conv_1x1", "nor_conv_3x3"):
                    k = 1 if op == "nor_conv_1x1" else 3
                    terms.append(g.bn(g.conv(g.act(nodes[i], "relu"), c, k)))
                elif op == "avg_pool_3x3":
                    terms.append(g.pool(nodes[i], 3, 1, 1, count_include_pad=False))
            nodes.append(g.add(terms) if terms else g.zero(x))
        return nodes[3]

    @staticmethod
    def _reduction(g: Graph, x: int, c_out: int) -> int:
        a = g.bn(g.conv(g.act(x, "relu"), c_out, 3, stride=2))
        b = g.bn(g.conv(g.act(a, "relu"), c_out, 3))
        shortcut = g.conv(g.pool(x, 2, 2), c_out, 1)
        return g.add([shortcut, b])

    def canonical_codes(self, codes: np.ndarray) -> np.ndarray:
        """The representative of each row's isomorphism class (see :func:`iso_key`): isomorphic cells map
        to the same codes, so proxies computed on the representative give them equal scores."""
        reps = _representatives()
        codes = np.asarray(codes, dtype=np.int64).reshape(-1, 6)
        return np.array([reps[iso_key(c)] for c in codes], dtype=np.int64).reshape(-1, 6)

    def enumerate_codes(self, chunk: int = 65536, order: str = "official") -> Iterator[np.ndarray]:
        """All 15,625 cells.  ``order="official"`` follows the NAS-Bench-201 index, read from the shared
        data (``nb201/nb201_cifar10.csv``); when that file is absent the canonical order is used and a
        warning says so.  ``order="canonical"``: the first edge varying slowest."""
        if order == "official":
            path = shared_data("nb201/nb201_cifar10.csv")
            if path is not None:
                codes = official_codes(path, self)
                for start in range(0, len(codes), chunk):
                    yield codes[start:start + chunk]
                return
            print("zeroshot: warning: ../shared/data/nb201/nb201_cifar10.csv not found (set "
                  "ZEROSHOT_SHARED_DATA); enumerating nb201 in canonical order, not the official index",
                  file=sys.stderr)
        elif order != "canonical":
            raise ValueError(f"unknown order {order!r}; choose from official, canonical")
        yield from self._enumerate_product(chunk)


def iso_key(codes) -> str:
    """Isomorphism key of one cell: equal keys for cells computing the same function.

    Edges that carry nothing are pruned: ``none``, and any op reading a node whose value is zero (a
    node all of whose inputs were pruned; written ``#``).  ``skip_connect`` passes its input's expression,
    other ops wrap it as ``(expr)@op``, and a node is the sorted ``+``-join of its terms, which
    canonicalises the cell under the permutation symmetry of its intermediate nodes and of the terms of
    each sum.  The key is the output node's expression.  This is the rule of the NAS-Bench-201 API
    (``Structure.to_unique_str(consider_zero=True)``): 6,466 distinct keys over the 15,625 cells.

    >>> iso_key([3, 0, 0, 1, 0, 0]) == iso_key([0, 0, 0, 1, 0, 0])   # node 1 is never read
    True
    >>> iso_key([3, 0, 0, 1, 1, 0]) == iso_key([1, 0, 0, 1, 3, 0])   # conv then skip = skip then conv
    True
    """
    nodes = ["0"]
    for j in (1, 2, 3):
        terms = []
        for e, (target, i) in enumerate(EDGES):
            if target != j:
                continue
            op = OPS[int(codes[e])]
            if op == "none" or nodes[i] == "#":
                terms.append("#")
            elif op == "skip_connect":
                terms.append(nodes[i])
            else:
                terms.append(f"({nodes[i]})@{op}")
        nodes.append("+".join(sorted(terms)))
    return nodes[3]


@functools.lru_cache(maxsize=1)
def _representatives() -> dict[str, tuple[int, ...]]:
    """Representative codes of every isomorphism class: its member with the fewest non-``none`` edges
    (the most pruned network), ties broken by the smallest code."""
    best: dict[str, tuple[int, ...]] = {}
    for codes in itertools.product(range(len(OPS)), repeat=6):
        key = iso_key(codes)
        rank = (sum(c != 0 for c in codes), codes)
        if key not in best or rank < (sum(c != 0 for c in best[key]), best[key]):
            best[key] = codes
    return best

def official_codes(path, space: Nb201Space | None = None) -> np.ndarray:
    """Codes of the 15,625 cells in official index order, from a CSV with ``index`` and ``arch_str``."""
    import csv

    space = space or Nb201Space()
    with open(path, newline="") as f:
        rows = sorted((int(r["index"]), r["arch_str"]) for r in csv.DictReader(f))
    return np.array([space.parse(s) for _, s in rows], dtype=np.int64)
