"""Regularized (aging) evolution (Real et al., 2019): the one evolution loop of search and refine.

A population of at most ``size`` members; each generation draws one tournament of ``sample`` members per
child (without replacement), mutates the winner (the fittest; the first drawn wins a tie) into a child, and
the children join the population while as many of its oldest members die.  What differs between users is
passed in: what an individual is, how children are proposed, how they are evaluated and what fitness is.

* search (:mod:`zeroshot.strategies`): members are (codes, trained record) pairs, fitness (accuracy,
  -latency); the zero-shot strategy's members are codes, fitness their current zero-shot score;
* refine (:mod:`zeroshot.refine`): members are (genome, latency if acceptable else inf) pairs, fitness
  minus that.

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> left = [4]                                   # generations
>>> def generation():
...     left[0] -= 1
...     return 2 if left[0] >= 0 else 0
>>> final = aging_evolution([0, 1, 2], evaluate=list, fitness=lambda pop: pop,
...                         propose=lambda parent, siblings: parent + 10, rng=rng, size=3, sample=2,
...                         generation=generation)
>>> len(final), min(final) >= 10                 # every initial member aged out
(3, True)
"""
from __future__ import annotations

from collections import deque
from typing import Callable, Sequence

import numpy as np

__all__ = ["aging_evolution", "tournament"]


def tournament(fitness: Sequence, sample: int, rng: np.random.Generator) -> int:
    """Index of the fittest (highest ``fitness``) of ``sample`` members drawn without replacement (all of
    them when fewer); among equally fit ones the first drawn.

    >>> tournament([0.1, 0.9, 0.5], 3, np.random.default_rng(0))
    1
    """
    drawn = rng.choice(len(fitness), size=min(sample, len(fitness)), replace=False)
    return int(max(drawn, key=lambda i: fitness[i]))


def aging_evolution(initial: Sequence, evaluate: Callable[[list], list], fitness: Callable[[list], Sequence],
                    propose: Callable, rng: np.random.Generator, size: int, sample: int,
                    generation: Callable[[], int]) -> deque:
    """Evolve ``initial`` individuals; the final population (oldest first).

    ``evaluate(individuals)`` gives their members (one per individual evaluated, in order: a search's
    budget may cut the list short); ``fitness(members)`` one comparable value per member, higher fitter
    (asked once per generation, so it may change as the run goes); ``propose(parent member, siblings)`` a
    child individual, or None when it has none (``siblings``: the children already proposed this
    generation); ``generation()`` how many children the next generation has, 0 to stop.  The evolution
    also stops when a generation proposes nothing or the population is empty."""
    population = deque(evaluate(list(initial)), maxlen=size)
    while population and (n := generation()) > 0:
        fit = fitness(list(population))
        children: list = []
        for _ in range(n):
            child = propose(population[tournament(fit, sample, rng)], children)
            if child is not None:
                children.append(child)
        if not children:
            break
        population.extend(evaluate(children))
    return population
