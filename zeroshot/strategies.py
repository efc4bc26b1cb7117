"""Search strategies: functions ``strategy(study)`` that propose candidates to a
:class:`~zeroshot.study.Study` until its budget (``study.remaining``) is spent.

* ``random``: fresh feasible random candidates, ``parallel`` per step.
* ``evolution``: regularized (aging) evolution (Real et al., 2019; :mod:`zeroshot.evolution`) with
  NATS-Bench's settings: a population of ``population`` = 10, tournaments of ``sample`` = 3 by accuracy
  (latency breaks ties), one mutation (the space's ``mutate_codes``) per child, the oldest member dies.
* ``prefiltered``: the same evolution where zero-shot scores decide what is trained (Abdelfattah et al.,
  ICLR 2021: zero-cost warm-up and move proposal).  Warm-up: ``pool`` = 3,000 random feasible candidates
  (the seed draws them), the ``population`` = 5 best by score are trained: the score already did the
  warm-up's exploring, so half of plain evolution's population leaves more of a small budget to generations
  steered by accuracy.  Each generation's parent proposes ``children`` = 24 mutants (as many as an NB201
  cell's single-edit neighbours, 6 edges x 4 other operations); one of the best by score is trained.
  Which of the well-scored ones: ``tournament`` = 2, each kept candidate is the better by score of 2 drawn
  by the seed among the ``network_per_kept`` x kept best (0: the best by score).
* ``zeroshot``: the same warm-up and generations with the score as fitness and nothing trained; the
  best-scored candidate seen is evaluated once at the end, for the report.  Its proposals are made as
  ``prefiltered``'s, but its generations follow the score instead of accuracy, so they diverge after the
  warm-up.

The pre-filter's own two stages follow the funnel (:meth:`~zeroshot.prefilter.Prefilter.best`): the
funnel's cheap topology proxy (``cheap``, the screen's default) ranks a batch, and only
``network_per_kept`` = 4 candidates per one kept pay for the score's network proxies (20 of the warm-up's
3,000, 4 of a generation's 24), which bounds the proxy cost at a few forward passes per training.  Which
ones: ``cheap_tournament`` = 2, each the better by the cheap proxy of 2 drawn by the seed among the
``network_per_kept`` x as many best by it (4 of a generation's best 16; 0: the best by it).
The seed is the whole run's: it draws the warm-up's pool, every mutation and the pre-filter's tournaments,
seeds the pre-filter's network proxies and draws the images they see (:class:`~zeroshot.prefilter.ProxyScorer`).
How the pre-filter's settings were chosen (development seeds, validation accuracy): docs/search.md and
benchmarks/results/search_nb201_protocol.md.  :func:`register_strategy` adds a strategy of one's own.

Example
-------
>>> list_strategies()
['evolution', 'prefiltered', 'random', 'zeroshot']
>>> describe("random")
'random feasible candidates, each trained'
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .evolution import aging_evolution
from .registry import Registry

__all__ = ["DEFAULT_POPULATION", "STRATEGIES", "describe", "get_strategy", "list_strategies", "register_strategy"]

STRATEGIES: Registry[Callable] = Registry("strategy")


#: a strategy's population when neither its registration nor the search says
DEFAULT_POPULATION = 10


def register_strategy(name: str, description: str,
                      population: int = DEFAULT_POPULATION) -> Callable[[Callable], Callable]:
    """Decorator registering ``fn(study)`` as the strategy ``name``, described in one line; ``population``:
    the strategy's default population (a search's ``population=None``)."""
    def deco(fn: Callable) -> Callable:
        fn.description, fn.defaults = description, {"population": population}
        return STRATEGIES.register(name)(fn)
    return deco


def get_strategy(name: str) -> Callable:
    """The strategy registered as ``name`` (:class:`~zeroshot.errors.UnknownNameError` listing them)."""
    return STRATEGIES.get(name)


def list_strategies() -> list[str]:
    """Names of the registered search strategies, sorted.

    >>> list_strategies()
    ['evolution', 'prefiltered', 'random', 'zeroshot']
    """
    return STRATEGIES.names()


def describe(name: str) -> str:
    """The one-line description strategy ``name`` was registered with."""
    return get_strategy(name).description


@register_strategy("random", "random feasible candidates, each trained")
def random_search(study) -> None:
    while study.remaining > 0:
        batch = study.sample(min(study.cfg.parallel, study.remaining))
        if not len(batch):
            return
        study.evaluate(batch)


@register_strategy("evolution", "regularized (aging) evolution, every child trained")
def evolution(study) -> None:
    def propose(parent, siblings):
        return _first(study.mutants(parent[0], 1, _keys(study, siblings)))
    _evolve_trained(study, study.sample(min(study.cfg.population, study.remaining)), propose)


@register_strategy("prefiltered", "aging evolution; zero-shot scores pick the warm-up and the child to train",
                   population=5)
def prefiltered(study) -> None:
    cfg, best = study.cfg, study.prefilter.best

    def propose(parent, siblings):
        return _first(best(study.mutants(parent[0], cfg.children, _keys(study, siblings)), 1))
    _evolve_trained(study, best(study.sample(cfg.pool), min(cfg.population, study.remaining)), propose)


def _evolve_trained(study, initial: np.ndarray, propose: Callable) -> None:
    """Aging evolution whose members are (codes, evaluation record) pairs, the fittest the most accurate
    (then the fastest), ``parallel`` children per generation while budget remains."""
    cfg = study.cfg
    aging_evolution(initial, evaluate=lambda codes: list(zip(codes, study.evaluate(np.array(codes)))),
                    fitness=lambda members: [(r["accuracy"], -r["latency_ms"]) for _, r in members],
                    propose=propose, rng=study.rng, size=cfg.population, sample=cfg.sample,
                    generation=lambda: max(0, min(cfg.parallel, study.remaining)))


@register_strategy("zeroshot", "aging evolution on the zero-shot score alone; only the final pick is evaluated",
                   population=5)
def zeroshot(study) -> None:
    cfg, pre = study.cfg, study.prefilter
    generations = iter(range(max(cfg.budget - cfg.population, 0)))
    aging_evolution(pre.best(study.sample(cfg.pool), cfg.population), evaluate=list,
                    fitness=lambda members: pre.scores(np.array(members)).tolist(),
                    propose=lambda parent, _: _first(pre.best(study.mutants(parent, cfg.children, set(pre.keys)), 1)),
                    rng=study.rng, size=cfg.population, sample=cfg.sample,
                    generation=lambda: 0 if next(generations, None) is None else 1)
    if pre.keys:
        codes = np.array(pre.codes)
        study.evaluate(codes[int(np.argmax(pre.scores(codes)))][None])


def _first(codes: np.ndarray):
    return codes[0] if len(codes) else None


def _keys(study, codes: list) -> set[str]:
    return set(study.canonical(np.array(codes))) if codes else set()
