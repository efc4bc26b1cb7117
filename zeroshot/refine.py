"""Refining a baseline along chosen design dimensions: per-block fusion and per-stage depth multipliers.

The searched architectures are the baseline with, for each dimension switched on,

* ``fusion``: each of its IBN blocks kept or fused (one bit per block: ``fuse`` of :mod:`zeroshot.spaces.rewrites`
  block by block);
* ``depth-multiplier``: each stage's depth multiplied by one of :data:`DEPTH_MULTIPLIERS` (ceil, at least
  one block; the first blocks kept, as the ``depth`` rewrite does, stage by stage); for stages of up to
  four blocks (MobileNetV2's) these reach every depth from one block to the baseline's;
* ``width``: each stage's widths multiplied by one of :data:`WIDTH_MULTIPLIERS` (make_divisible 8);
* ``resolution``: the input side scaled by one of :data:`RESOLUTION_SCALES` (a multiple of 32; dense
  heads' outputs follow the input).

Depth here is the number of blocks (EfficientNet's depth coefficient); TF-slim's MobileNet
``depth_multiplier`` scales channels instead (the ``width`` rewrite).

A candidate is acceptable when its score is at or above the baseline's, the score being the rank
aggregate (:func:`zeroshot.scoring.rank_aggregate`) of ``proxies`` over the pair (baseline, candidate)
(with no ``proxies`` every candidate is: the latency floor of the dimensions on the device); the
search minimises latency on the device among acceptable candidates with regularized evolution (population
50, tournaments of 10, one mutation per child, children costed 50 at a time, ``budget`` candidates in
all, the baseline in the first population).  Every candidate is costed by the estimator and scored in
batches; nothing is trained.

Network proxies (the default score's meco and swap) are computed on a *proxy view* of each candidate
(:func:`proxy_view`): its backbone with the classification head when its task is dense (an SSDLite head's
last extra maps are 1x1, where train-mode BN over one image is undefined, so meco is NaN for every
detection network), at ``proxy_resolution`` pixels when given (the cost of a network proxy grows with the
pixels: 320 px detection networks take seconds to minutes each on a CPU).  Topology proxies always see
the whole network.  ``cache`` (a dict) keeps proxy values across calls, keyed by the view's codes.

Example
-------
>>> from zeroshot.spaces import get_space
>>> from zeroshot.spaces.baselines import get_baseline
>>> from zeroshot.estimator.devices import load_device
>>> space = get_space("mbv2")
>>> base = space.parse(get_baseline("mbv2", "mobilenetv2"))
>>> r = refine(space, base, ("fusion",), load_device("mobile-npu-16"), budget=100, seed=0)
>>> r["latency_ms"] <= r["baseline"]["latency_ms"] and r["score_ok"]
True
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from zeroshot.estimator.devices import Device
from zeroshot.estimator.estimate import Estimator
from zeroshot.spaces import SearchSpace
from zeroshot.spaces.moves import scale_width, scaled_depth

from .checks import check_int, check_seed
from .errors import InputError, ParameterError
from .evolution import aging_evolution
from .pareto import pareto_front
from .proxies import get_proxy
from .proxy_cache import ProxyCache
from .scoring import compute_proxies, rank_aggregate

DIMENSIONS = ("fusion", "depth-multiplier", "width", "resolution")
DEPTH_MULTIPLIERS = (0.25, 0.5, 0.75, 1.0)
WIDTH_MULTIPLIERS = (0.5, 0.75, 1.0)          # per stage, make_divisible by 8
RESOLUTION_SCALES = (0.75, 0.875, 1.0)        # of the baseline's input side, rounded to a multiple of 32
TOPOLOGY_SCORE = ("live_macs", "entropy")
POPULATION, TOURNAMENT, BATCH = 50, 10, 50

__all__ = ["DEPTH_MULTIPLIERS", "DIMENSIONS", "RESOLUTION_SCALES", "TOPOLOGY_SCORE", "WIDTH_MULTIPLIERS", "Refiner",
           "proxy_view", "refine", "score_values"]


class Refiner:
    """Genomes -> codes of ``space``: one gene per baseline block (fusion: 0 IBN, 1 fused), then per stage a
    depth-multiplier index, per stage a width-multiplier index, and a resolution index; genes of dimensions
    switched off stay at the baseline's value."""

    def __init__(self, space: SearchSpace, base: np.ndarray, dims: Sequence[str]):
        if not hasattr(space, "decode"):
            raise InputError(f"refining works on spaces of stages of IBN / fused blocks (mbv2); {space.name!r} "
                             "is not one")
        if isinstance(dims, str) or not dims or not set(dims) <= set(DIMENSIONS):
            raise ParameterError("dims", f"one or more of {', '.join(DIMENSIONS)}", dims)
        self.space, self.dims = space, tuple(dims)
        self.res, self.stem, self.head, self.stages = space.decode(base)
        self.n_blocks, n = sum(map(len, self.stages)), len(self.stages)
        per_dim = {"fusion": ([2] * self.n_blocks, [b[0] for st in self.stages for b in st]),
                   "depth-multiplier": ([len(DEPTH_MULTIPLIERS)] * n, [DEPTH_MULTIPLIERS.index(1.0)] * n),
                   "width": ([len(WIDTH_MULTIPLIERS)] * n, [WIDTH_MULTIPLIERS.index(1.0)] * n),
                   "resolution": ([len(RESOLUTION_SCALES)], [RESOLUTION_SCALES.index(1.0)])}
        self.options = np.concatenate([per_dim[d][0] for d in DIMENSIONS]).astype(np.int64)
        self.base_genome = np.concatenate([per_dim[d][1] for d in DIMENSIONS]).astype(np.int64)
        self.active = np.concatenate([[d in self.dims] * len(per_dim[d][0]) for d in DIMENSIONS])

    def random(self, n: int, rng: np.random.Generator) -> np.ndarray:
        g = (rng.random((n, len(self.options))) * self.options).astype(np.int64)
        return np.where(self.active, g, self.base_genome)

    def mutate(self, genome: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        g = genome.copy()
        i = int(rng.choice(np.flatnonzero(self.active & (self.options > 1))))
        g[i] = (g[i] + 1 + int(rng.integers(self.options[i] - 1))) % self.options[i]
        return g

    def codes(self, genomes: np.ndarray) -> np.ndarray:
        out, first, n = [], np.cumsum([0] + [len(st) for st in self.stages]), len(self.stages)
        for g in genomes:
            depth, width = g[self.n_blocks:self.n_blocks + n], g[self.n_blocks + n:self.n_blocks + 2 * n]
            stages = []
            for s, blocks in enumerate(self.stages):
                d = scaled_depth(len(blocks), DEPTH_MULTIPLIERS[depth[s]])
                m = WIDTH_MULTIPLIERS[width[s]]
                stages.append([(int(g[first[s] + j]), b[1], b[2], b[3] if m == 1 else scale_width(b[3], m))
                               for j, b in enumerate(blocks[:d])])
            res = max(32, round(self.res * RESOLUTION_SCALES[g[-1]] / 32) * 32)
            out.append(self.space.encode(res, self.stem, self.head, stages))
        return np.stack(out)


def proxy_view(space: SearchSpace, resolution: int | None = None):
    """``(view space, codes -> view codes)``: what network proxies see of a candidate (module docstring)."""
    view = space
    if resolution is not None and getattr(space, "resolution_column", None) is None:
        raise ParameterError("proxy_resolution", f"None for {space.name}, whose input is fixed (only spaces "
                             f"whose encodings hold the input side take one, like mbv2)", resolution)
    if getattr(space, "task", "classify") != "classify":
        view = type(space)(space.parallelism, task="classify")
        if view.code_length != space.code_length:
            raise InputError(f"no classification backbone of {space!r} with the same encoding")

    def codes_of(codes: np.ndarray) -> np.ndarray:
        codes = np.array(codes, dtype=np.int64, copy=True)
        if resolution is not None:
            codes[:, space.resolution_column] = resolution
        return codes
    return view, codes_of


def score_values(space: SearchSpace, codes: np.ndarray, proxies: Sequence[str], proxy_resolution: int | None,
                 batch_size: int | None = None, cache: dict | None = None) -> dict[str, np.ndarray]:
    """Values of ``proxies`` for ``codes``: topology ones on the networks, network ones on their proxy view
    (:func:`proxy_view`), cached in ``cache`` by view codes."""
    codes = np.asarray(codes, dtype=np.int64).reshape(-1, space.code_length)
    topo = [p for p in proxies if get_proxy(p).kind == "topology"]
    net = [p for p in proxies if p not in topo]
    out = compute_proxies(space, codes, topo) if topo else {}
    if net:
        view, codes_of = proxy_view(space, proxy_resolution)
        vcodes = codes_of(codes)
        def compute(rows):
            return compute_proxies(view, vcodes[rows], net, batch_size=batch_size)
        out.update(ProxyCache(cache).values([c.tobytes() for c in vcodes], net, compute))
    return {p: out[p] for p in proxies}


def refine(space: SearchSpace, base: np.ndarray, dims: Sequence[str], device: Device, budget: int = 2000,
           seed: int = 0, proxies: Sequence[str] = TOPOLOGY_SCORE, proxy_resolution: int | None = None,
           batch_size: int | None = None, cache: dict | None = None) -> dict:
    """The fastest acceptable refinement of ``base`` found within ``budget`` candidates (see module doc).

    Returns the best architecture's ``arch``, ``latency_ms``, ``params``, ``macs``, ``peak_activation_bytes``,
    ``score_ok``, the ``baseline``'s metrics, ``evaluated`` and ``acceptable`` counts, and the ``front``: the
    Pareto front of (score ranked over every candidate evaluated and the baseline, latency).
    ``proxy_resolution``, ``batch_size`` (network proxies' batch, default 64) and ``cache``: see the module
    docstring."""
    check_int("budget", budget, POPULATION, f"at least {POPULATION} (the first population is evaluated whole)")
    check_seed(seed)
    if proxy_resolution is not None and not 32 <= proxy_resolution <= 4096:
        raise ParameterError("proxy_resolution", "32..4096 pixels", proxy_resolution, fix="try 128")
    rng = np.random.default_rng(seed)
    ref = Refiner(space, base, dims)
    judge = _Judge(space, ref, Estimator(space, device), base, proxies, proxy_resolution, batch_size, cache)
    spent = [0]

    def evaluate(genomes: list) -> list:
        spent[0] += len(genomes)
        genomes = np.stack(genomes)
        return list(zip(genomes, judge(genomes)))

    aging_evolution(np.concatenate([ref.base_genome[None], ref.random(POPULATION - 1, rng)]), evaluate,
                    fitness=lambda members: [-latency for _, latency in members],
                    propose=lambda parent, _: ref.mutate(parent[0], rng), rng=rng, size=POPULATION,
                    sample=TOURNAMENT, generation=lambda: min(BATCH, budget - spent[0]))
    return judge.result()


class _Judge:
    """Cost and acceptability of refinements of ``base``, each distinct architecture once; called with
    genomes, their fitness to minimise: the latency of an acceptable one, infinity otherwise."""

    def __init__(self, space: SearchSpace, ref: Refiner, est: Estimator, base: np.ndarray, proxies: Sequence[str],
                 proxy_resolution: int | None, batch_size: int | None, cache: dict | None):
        self.space, self.ref, self.est, self.proxies = space, ref, est, tuple(proxies)
        self.score_args = (proxy_resolution, batch_size, cache)
        self.base_cost = {k: v[0] for k, v in est.evaluate(base[None]).items()}
        self.base_proxies = score_values(space, base[None], proxies, *self.score_args)
        self.seen: dict[bytes, tuple[float, bool, dict]] = {}    # codes -> (latency, acceptable, metrics)

    def __call__(self, genomes: np.ndarray) -> np.ndarray:
        codes = self.ref.codes(genomes)
        keys = [c.tobytes() for c in codes]
        new = [i for i, k in enumerate(keys) if k not in self.seen]
        if new:
            cost = self.est.evaluate(codes[new])
            values = score_values(self.space, codes[new], self.proxies, *self.score_args)
            for j, i in enumerate(new):
                s = rank_aggregate({p: np.array([self.base_proxies[p][0], values[p][j]]) for p in self.proxies}) \
                    if self.proxies else np.zeros(2)
                self.seen[keys[i]] = (float(cost["latency_ms"][j]), bool(s[1] >= s[0]),
                                      {k: v[j] for k, v in cost.items()} | {"arch": self.space.format(codes[i])}
                                      | {p: values[p][j] for p in self.proxies})
        return np.array([self.seen[k][0] if self.seen[k][1] else np.inf for k in keys])

    def result(self) -> dict:
        """What :func:`refine` returns, from everything judged."""
        ok = {k: v for k, v in self.seen.items() if v[1]}
        best = min(ok.values(), key=lambda v: v[0])[2]
        base = {**self.base_cost, **{p: self.base_proxies[p][0] for p in self.proxies}}
        front = _front([v[2] for v in self.seen.values()], base, self.proxies) if self.proxies else []
        return {**best, "score_ok": True, "baseline": self.base_cost, "evaluated": len(self.seen),
                "acceptable": len(ok), "front": front}


def _front(rows: list[dict], base: dict, proxies: Sequence[str]) -> list[dict]:
    """Pareto front of (score, latency) over every candidate and the baseline, the score ranked over all of
    them; each row gains ``score`` and ``at_least_baseline`` (its score at or above the baseline's)."""
    everyone = rows + [base | {"arch": "baseline"}]
    score = rank_aggregate({p: np.array([r[p] for r in everyone]) for p in proxies})
    lat = np.array([r["latency_ms"] for r in everyone])
    return [everyone[i] | {"score": float(score[i]), "at_least_baseline": bool(score[i] >= score[-1])}
            for i in pareto_front(score, lat)]
