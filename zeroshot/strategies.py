"""Search strategies: a registry of functions ``strategy(ctx: SearchContext)`` spending ``ctx.remaining``.

* ``random``: fresh feasible random candidates, ``parallel`` per step.
* ``evolution``: regularized (aging) evolution (Real et al., 2019) with NATS-Bench's settings: a
  population of ``population`` = 10, tournaments of ``sample`` = 3 by accuracy (latency breaks ties), one
  mutation (the space's ``mutate_codes``) per child, the oldest member dies.
* ``prefiltered``: the same evolution where zero-shot scores decide what is trained (Abdelfattah et al.,
  ICLR 2021: zero-cost warm-up and move proposal).  Warm-up: ``pool`` = 1,000 random feasible candidates,
  the ``population`` best by score are trained.  Each generation's parent proposes ``children`` = 24
  mutants (as many as an NB201 cell's single-edit neighbours, 6 edges x 4 other operations); only the best
  by score is trained.
* ``zeroshot``: the same warm-up and generations with the score as fitness and nothing trained; the
  best-scored candidate seen is evaluated once at the end, for the report.  It proposes exactly what
  ``prefiltered`` proposes for the same budget.

The pre-filter's own two stages follow the funnel (:meth:`~zeroshot.search.SearchContext.prefilter`):
the funnel's cheap topology proxy (``cheap``, the screen's default) ranks a batch, and only
``network_per_kept`` = 4 candidates per one kept pay for the score's network proxies (40 of the warm-up's
1,000, 4 of a generation's 24), which bounds the proxy cost at a few forward passes per training.  Settings were chosen on these principles before any benchmark
ran; none was tuned on an oracle's accuracies.

Example
-------
>>> list_strategies()
['evolution', 'prefiltered', 'random', 'zeroshot']
"""
from __future__ import annotations

from collections import deque
from typing import Callable

import numpy as np

from .errors import UserError

_STRATEGIES: dict[str, tuple[Callable, str]] = {}


def register_strategy(name: str, description: str):
    def deco(fn):
        _STRATEGIES[name] = (fn, description)
        return fn
    return deco


def get_strategy(name: str) -> Callable:
    try:
        return _STRATEGIES[name][0]
    except KeyError:
        raise UserError(f"unknown strategy {name!r}; choose from {', '.join(list_strategies())}") from None


def list_strategies() -> list[str]:
    return sorted(_STRATEGIES)


def describe(name: str) -> str:
    return _STRATEGIES[name][1]


@register_strategy("random", "random feasible candidates, each trained")
def random_search(ctx) -> None:
    while ctx.remaining > 0:
        batch = ctx.sample(min(ctx.cfg.parallel, ctx.remaining))
        if not len(batch):
            return
        ctx.evaluate(batch)


@register_strategy("evolution", "regularized (aging) evolution, every child trained")
def evolution(ctx) -> None:
    _aging_evolution(ctx, prefilter=False)


@register_strategy("prefiltered", "aging evolution; zero-shot scores pick the warm-up and the child to train")
def prefiltered(ctx) -> None:
    _aging_evolution(ctx, prefilter=True)


def _fitness(rec: dict) -> tuple:
    return rec["accuracy"], -rec["latency_ms"]


def _tournament(ctx, fitness: list) -> int:
    """Index of the fittest of ``sample`` members drawn without replacement."""
    idx = ctx.rng.choice(len(fitness), size=min(ctx.cfg.sample, len(fitness)), replace=False)
    return int(max(idx, key=lambda i: fitness[i]))


def _aging_evolution(ctx, prefilter: bool) -> None:
    cfg = ctx.cfg
    n0 = min(cfg.population, ctx.remaining)
    init = ctx.prefilter(ctx.sample(cfg.pool), n0) if prefilter else ctx.sample(n0)
    population = deque(zip(init, ctx.evaluate(init)), maxlen=cfg.population)
    while ctx.remaining > 0 and population:
        fitness = [_fitness(r) for _, r in population]
        children, exclude = [], set()
        for _ in range(min(cfg.parallel, ctx.remaining)):
            parent = population[_tournament(ctx, fitness)][0]
            if prefilter:
                child = ctx.prefilter(ctx.mutants(parent, cfg.children, exclude), 1)
            else:
                child = ctx.mutants(parent, 1, exclude)
            if len(child):
                children.append(child[0])
                exclude.update(ctx.canonical(child))
        if not children:
            return
        children = np.array(children)
        population.extend(zip(children, ctx.evaluate(children)))


@register_strategy("zeroshot", "aging evolution on the zero-shot score alone; only the final pick is evaluated")
def zeroshot(ctx) -> None:
    cfg = ctx.cfg
    population = deque(ctx.prefilter(ctx.sample(cfg.pool), cfg.population), maxlen=cfg.population)
    for _ in range(max(cfg.budget - cfg.population, 0)):
        if not population:
            break
        scores = ctx.scores(np.array(population))
        parent = population[_tournament(ctx, scores.tolist())]
        child = ctx.prefilter(ctx.mutants(parent, cfg.children, set(ctx.book_keys)), 1)
        population.extend(child)
    if not ctx.book_keys:
        return
    codes = np.array(ctx.book_codes)
    ctx.evaluate(codes[int(np.argmax(ctx.scores(codes)))][None])
