"""The zero-shot pre-filter of a search: proxy values of candidates, and the best few of a batch by score.

:class:`ProxyScorer` computes (and caches) proxy values; its ``seed`` is the proxies' seed (the networks'
random weights, the synthetic input) and draws which images they see (:func:`draw_batch`), so a search's
seed reaches its scores, not only its sampling.  :class:`Prefilter` keeps the book of every
candidate scored in a search and ranks candidates among all of them: a candidate's score is the rank
aggregate (:func:`zeroshot.scoring.rank_aggregate`) of the proxies over every candidate scored so far, so
it may change as the search scores more.  :meth:`Prefilter.best` is the funnel in small: the funnel's cheap
topology proxy ranks a batch, only the best ``network_per_kept`` per candidate kept pay for the score's
network proxies, and the score decides.

Example
-------
>>> from zeroshot.spaces import get_space
>>> space = get_space("nb201")
>>> codes = space.sample_codes(20, np.random.default_rng(0))
>>> pre = Prefilter(space, ProxyScorer(space, ("live_macs", "entropy"), None), cheap="entropy")
>>> best = pre.best(codes, 3)
>>> len(best), len(pre.keys), bool(pre.scores(best)[0] == pre.scores(codes).max())
(3, 20, True)
"""
from __future__ import annotations

from typing import Callable, Sequence

import hashlib

import numpy as np

from .batches import Data
from .evolution import tournament
from .proxies import get_proxy
from .proxy_cache import ProxyCache
from .scoring import compute_proxies, rank_aggregate

__all__ = ["Prefilter", "ProxyScorer", "batch_key", "draw_batch"]


def draw_batch(data: Data | None, n: int, seed: int) -> Data | None:
    """``n`` images of ``data`` drawn without replacement by ``seed`` (kept in file order); all of them when
    it holds no more; None stays None (the proxies then see seeded synthetic input).

    >>> from zeroshot.batches import synthetic_data
    >>> d = synthetic_data(10, (1, 2, 2), classes=3)
    >>> [len(draw_batch(d, 4, 0)), len(draw_batch(d, 20, 0))]
    [4, 10]
    >>> same, other = draw_batch(d, 4, 0).x == draw_batch(d, 4, 0).x, draw_batch(d, 4, 0).x == draw_batch(d, 4, 1).x
    >>> bool(same.all()), bool(other.all())
    (True, False)
    """
    if data is None or len(data) <= n:
        return data
    rows = np.sort(np.random.default_rng(seed).choice(len(data), size=n, replace=False))
    return Data(data.x[rows], data.y[rows], data.synthetic)


def batch_key(data: Data | None, batch_size: int) -> str:
    """A short digest of what network proxies see (the images and labels; ``synthetic`` without data), to
    key cached values by: values on one batch are not values on another.

    >>> batch_key(None, 64)
    'synthetic64'
    """
    if data is None:
        return f"synthetic{batch_size}"
    digest = hashlib.sha1(np.ascontiguousarray(data.x[:batch_size]).tobytes())
    digest.update(np.ascontiguousarray(data.y[:batch_size]).tobytes())
    return digest.hexdigest()[:12]


class ProxyScorer:
    """Proxy values of architectures: topology proxies cached per encoding in memory, network proxies
    computed once per isomorphism class on ``batch_size`` images of ``data`` drawn by ``seed``
    (:func:`draw_batch`) with weights initialised by ``seed``, and cached in ``cache`` keyed by
    (seed, :func:`batch_key`, canonical encoding) -> {proxy: value}; pass a dict loaded from a file to reuse
    values across runs (the benchmark does; scorers of different seeds may share it).  ``names`` are the
    proxies :meth:`values` gives by default; any registered proxy can be asked for."""

    def __init__(self, space, names: Sequence[str], data: Data | None, seed: int = 0, batch_size: int = 64,
                 cache: dict | None = None):
        self.space, self.names, self.seed, self.batch_size = space, tuple(names), seed, batch_size
        self.data = draw_batch(data, batch_size, seed)
        self.context = (seed, batch_key(self.data, batch_size))
        self.cache = {} if cache is None else cache
        self._caches = {"topology": ProxyCache(), "network": ProxyCache(self.cache)}

    def values(self, codes: np.ndarray, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """``{proxy: values}`` of ``names`` (default: :attr:`names`) for ``codes``, one value per row."""
        names = list(self.names if names is None else names)
        out = {}
        for kind, cache in self._caches.items():
            wanted = [n for n in names if get_proxy(n).kind == kind]
            if wanted:
                rows = codes if kind == "topology" else self.space.canonical_codes(codes)
                archs = [self.space.format(c) for c in rows]
                keys = archs if kind == "topology" else [(*self.context, a) for a in archs]
                out.update(cache.values(keys, wanted, lambda todo: compute_proxies(
                    self.space, np.array([self.space.parse(archs[i]) for i in todo]), wanted, self.data,
                    self.seed, self.batch_size)))
        return {n: out[n] for n in names}

    def needs_network(self) -> bool:
        return any(get_proxy(n).kind == "network" for n in self.names)


class Prefilter:
    """The book of candidates scored in one search (module docstring).  ``cheap``: the topology proxy that
    picks which candidates pay for network proxies (None: all do); ``on_scored(codes, values)`` is told of
    each batch of newly scored candidates (the search records them); ``tournament``: 0 (or 1) keeps the
    best by score, k >= 2 keeps each one as the best of k drawn by ``rng`` among the well-scored ones not
    kept yet (:meth:`best`); ``cheap_tournament``: the same for the cheap stage, which picks the candidates
    that pay for network proxies."""

    def __init__(self, space, scorer: ProxyScorer, cheap: str | None = None, network_per_kept: int = 4,
                 on_scored: Callable[[np.ndarray, dict], None] | None = None, tournament: int = 0,
                 rng: np.random.Generator | None = None, cheap_tournament: int = 0):
        self.space, self.scorer, self.cheap, self.network_per_kept = space, scorer, cheap, network_per_kept
        self.on_scored, self.tournament, self.cheap_tournament = on_scored, tournament, cheap_tournament
        self.rng = rng
        self.keys: list[str] = []                  # every scored candidate (canonical encoding), in order
        self.codes: list[np.ndarray] = []          # the first code vector seen of each
        self._index: dict[str, int] = {}
        self._values: dict[str, list] = {n: [] for n in scorer.names}

    def canonical(self, codes: np.ndarray) -> list[str]:
        return [self.space.format(c) for c in self.space.canonical_codes(codes)]

    def scores(self, codes: np.ndarray) -> np.ndarray:
        """Rank-aggregated score of candidates among every candidate scored so far (higher is better)."""
        positions = self._book(codes)
        total = rank_aggregate({n: np.array(v) for n, v in self._values.items()})
        return total[positions]

    def best(self, codes: np.ndarray, keep: int) -> np.ndarray:
        """The ``keep`` best of ``codes`` by the score, best first; with a ``tournament``, the winners of
        successive tournaments among the best ``network_per_kept`` x ``keep`` by the score, in that order.
        When the score needs a network, only ``network_per_kept`` x ``keep`` chosen by the ``cheap`` proxy
        pay for it: the best by it, or with a ``cheap_tournament`` the winners of its tournaments."""
        if not len(codes):
            return codes
        n_net = self.network_per_kept * keep
        if self.cheap and self.scorer.needs_network() and n_net < len(codes):
            cheap = rank_aggregate(self.scorer.values(codes, [self.cheap]))
            codes = codes[self._winners(cheap, n_net, self.cheap_tournament)]
        return codes[self._winners(self.scores(codes), keep, self.tournament)]

    def _winners(self, fitness: np.ndarray, keep: int, k: int) -> np.ndarray:
        """Positions of ``keep`` of ``fitness``: the best, best first (``k`` < 2), or the winners of
        successive tournaments of ``k`` drawn by ``rng`` among the best ``network_per_kept`` x ``keep`` not
        kept yet, in that order."""
        order = np.argsort(-fitness, kind="stable")
        short = sorted(order[:self.network_per_kept * keep])    # the tournaments' entrants, in the order given
        if k < 2 or k >= len(short):
            return order[:keep]
        kept = []
        while short and len(kept) < keep:
            kept.append(short.pop(tournament(fitness[short], k, self.rng)))
        return np.array(kept, dtype=np.int64)

    def _book(self, codes: np.ndarray) -> list[int]:
        """Add candidates to the book (every proxy of the score); their positions in it."""
        keys = self.canonical(codes)
        new = sorted({k: i for i, k in enumerate(keys) if k not in self._index}.items(), key=lambda t: t[1])
        if new:
            rows = codes[[i for _, i in new]]
            values = self.scorer.values(rows)
            for j, (k, i) in enumerate(new):
                self._index[k] = len(self.keys)
                self.keys.append(k)
                self.codes.append(codes[i])
                for n in self._values:
                    self._values[n].append(values[n][j])
            if self.on_scored is not None:
                self.on_scored(rows, values)
        return [self._index[k] for k in keys]
