"""A search study: it evaluates what a strategy proposes, within a budget, and records it.

A strategy (:mod:`zeroshot.strategies`) asks the study for candidates and hands back those it wants
evaluated; the study owns everything strategies share:

* the **constraints**: every candidate is costed by the estimator (latency on the device, params) before
  anything else; one breaking them (:class:`~zeroshot.constraints.Constraints`) is never proposed, scored
  nor trained, and neither is one the evaluator cannot evaluate (an oracle that lacks it);
* the **candidates**: :meth:`Study.sample` and :meth:`Study.mutants` give fresh feasible ones, never one
  isomorphic to a candidate evaluated before;
* the **pre-filter** (:class:`~zeroshot.prefilter.Prefilter`): zero-shot scores of candidates;
* the **evaluator** (:mod:`zeroshot.evaluators`) and the **budget**: ``budget`` evaluations;
* the **record**: each evaluation joins the trajectory, goes to ``log`` and, with a results store, to its
  run (stage ``evaluated``; pre-filter-scored candidates at stage ``scored``).

Example
-------
>>> from zeroshot.searching import SearchConfig
>>> from zeroshot.evaluators import DictEvaluator
>>> from zeroshot.spaces import get_space
>>> space = get_space("nb201")
>>> cfg = SearchConfig(space="nb201", strategy="random", budget=2, proxies=("live_macs",))
>>> study = Study(cfg, space, DictEvaluator({a: 1.0 for a in space.sample(50, seed=0)}))
>>> records = study.evaluate(study.sample(3))
>>> len(records), study.remaining, records[0]["accuracy"]
(2, 0, 1.0)
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from zeroshot.estimator.devices import load_device
from zeroshot.estimator.segmented import SegmentedEvaluator, count_metrics, latency_metric

from .constraints import Constraints
from .errors import DataError, InputError
from .pareto import pareto_front
from .prefilter import Prefilter, ProxyScorer

__all__ = ["Study", "cost_evaluator"]

_COST: dict = {}


def cost_evaluator(space, device: str, key=None) -> SegmentedEvaluator:
    """params, MACs, peak memory and latency on ``device`` of ``space``'s codes: one evaluator (and its
    segment cache) per ``key`` (say, the space's name and options) and device in a process, shared by
    successive searches; without a key, per space object."""
    key = (space if key is None else key, device)
    if key not in _COST:
        metrics = count_metrics()
        metrics["latency_ms"] = latency_metric(load_device(device).for_space(space.name))
        _COST[key] = SegmentedEvaluator(space, metrics)
    return _COST[key]


class Study:
    """What strategies share (module docstring) for the search ``cfg`` (a
    :class:`~zeroshot.searching.SearchConfig`) of ``space`` with ``evaluator``.  Codes are int64 rows of the
    space.  ``scorer``: the pre-filter's :class:`~zeroshot.prefilter.ProxyScorer` (default: ``cfg.proxies``
    on synthetic input); ``store`` and ``run_id``: the results store and run to record into."""

    def __init__(self, cfg, space, evaluator, scorer: ProxyScorer | None = None, log: Callable | None = None,
                 store=None, run_id: int | None = None, cost: SegmentedEvaluator | None = None):
        self.cfg, self.space, self.evaluator, self.log = cfg, space, evaluator, log
        self.store, self.run_id = store, run_id
        self.rng = np.random.default_rng(cfg.seed)
        self.cost = cost or cost_evaluator(space, cfg.device)
        self.constraints = Constraints.from_config(cfg, exclusive=True)
        scorer = scorer or ProxyScorer(space, cfg.proxies, None, cfg.seed, cfg.batch_size)
        self.prefilter = Prefilter(space, scorer, cfg.cheap, cfg.network_per_kept, self._record_scored,
                                   cfg.tournament, self.rng, cfg.cheap_tournament)
        self.evaluated: dict[str, dict] = {}       # canonical encoding -> record
        self.trajectory: list[dict] = []
        self.uncovered = 0
        self._scored_chunks = 0

    # ---------------------------------------------------------- candidates
    def canonical(self, codes: np.ndarray) -> list[str]:
        return self.prefilter.canonical(codes)

    def feasible(self, codes: np.ndarray) -> np.ndarray:
        """Mask of rows within the constraints and known to the evaluator (counts what each removes)."""
        codes = np.asarray(codes, dtype=np.int64).reshape(-1, self.space.code_length)
        ok = self.constraints.mask(self.cost.evaluate(codes))
        covered = self.evaluator.covers([self.space.format(c) for c in codes])
        self.uncovered += int((ok & ~covered).sum())
        return ok & covered

    def fresh(self, codes: np.ndarray, exclude: set[str] = frozenset()) -> np.ndarray:
        """Feasible rows not evaluated yet nor in ``exclude``, one per isomorphism class, in order."""
        codes = np.asarray(codes, dtype=np.int64).reshape(-1, self.space.code_length)
        seen = set(self.evaluated) | set(exclude)
        keep = []
        for i, k in enumerate(self.canonical(codes)):
            if k not in seen:
                seen.add(k)
                keep.append(i)
        codes = codes[keep]
        return codes[self.feasible(codes)] if len(codes) else codes

    def sample(self, n: int, exclude: set[str] = frozenset()) -> np.ndarray:
        """Up to ``n`` distinct fresh feasible random candidates (none once ``exclude`` holds all there are); a
        clear error when none can be found at all."""
        out = np.empty((0, self.space.code_length), dtype=np.int64)
        for _ in range(50):
            if len(out) >= n:
                break
            draw = self.space.sample_codes(max(2 * (n - len(out)), 16), self.rng)
            out = np.concatenate([out, self.fresh(draw, exclude | set(self.canonical(out)))])
        if not len(out) and not self.evaluated and not exclude:      # nothing ever found, not just exhausted
            raise self._nothing_feasible()
        return out[:n]

    def mutants(self, parent: np.ndarray, n: int, exclude: set[str] = frozenset()) -> np.ndarray:
        """Up to ``n`` distinct fresh feasible mutations of ``parent`` (two-step ones once one-step
        neighbours run out), or random candidates when the neighbourhood is exhausted."""
        out = np.empty((0, self.space.code_length), dtype=np.int64)
        for attempt in range(8):
            steps = 1 if attempt < 4 else 2
            draw = []
            for _ in range(2 * n):
                c = parent
                for _ in range(steps):
                    c = self.space.mutate_codes(c, self.rng)
                draw.append(c)
            out = np.concatenate([out, self.fresh(np.array(draw), exclude | set(self.canonical(out)))])
            if len(out) >= n:
                break
        return out[:n] if len(out) else self.sample(n, exclude)

    def _nothing_feasible(self) -> Exception:
        infeasible = self.constraints.infeasible()
        if infeasible is not None:
            return infeasible
        if self.uncovered:
            return DataError(f"no sampled candidate is in the oracle {getattr(self.evaluator, 'source', '')}; "
                             f"it must cover the space being searched")
        return InputError("the space has no candidate left to evaluate")

    # ---------------------------------------------------------- evaluation
    @property
    def remaining(self) -> int:
        return self.cfg.budget - len(self.trajectory)

    def evaluate(self, codes: np.ndarray) -> list[dict]:
        """Evaluate candidates (within the remaining budget); their records, in order."""
        codes = np.asarray(codes, dtype=np.int64).reshape(-1, self.space.code_length)[: max(self.remaining, 0)]
        if not len(codes):
            return []
        archs = [self.space.format(c) for c in codes]
        results = self.evaluator(archs)
        cost = self.cost.evaluate(codes)
        records = []
        for i, (a, k, res) in enumerate(zip(archs, self.canonical(codes), results)):
            rec = {"step": len(self.trajectory) + 1, "arch": a, "accuracy": float(res["accuracy"]),
                   "latency_ms": float(cost["latency_ms"][i]), "params": int(cost["params"][i]),
                   "macs": int(cost["macs"][i])}
            rec["best"] = max([rec["accuracy"]] + [r["best"] for r in self.trajectory[-1:]])
            self.trajectory.append(rec)
            self.evaluated[k] = rec
            records.append(rec)
            self._record_evaluated(rec, res)
        return records

    # ---------------------------------------------------------- record
    def _record_evaluated(self, rec: dict, result: dict) -> None:
        if self.store is not None:
            extra = {m: v for m, v in result.items() if m != "accuracy" and isinstance(v, (int, float))}
            metrics = dict(extra, **{m: rec[m] for m in ("accuracy", "latency_ms", "params", "macs", "step")})
            self.store.write_chunk(self.run_id, rec["step"], [(rec["arch"], "evaluated", metrics)],
                                   stage_marker="evaluated")
        if self.log:
            self.log(rec)

    def _record_scored(self, codes: np.ndarray, values: dict) -> None:
        if self.store is None:
            return
        cost = self.cost.evaluate(codes)
        rows = [(self.space.format(c), "scored", {**{n: values[n][i] for n in values},
                                                   "latency_ms": cost["latency_ms"][i], "params": cost["params"][i]})
                for i, c in enumerate(codes)]
        self._scored_chunks += 1
        self.store.write_chunk(self.run_id, self._scored_chunks, rows, stage_marker="scored")

    def result(self) -> dict:
        """``best`` (highest accuracy, then lowest latency), the ``front`` of (accuracy, latency) by
        increasing latency, the ``trajectory``, and counts: ``evaluations``, ``scored``, ``removed_by``
        (candidates each constraint removed)."""
        traj = self.trajectory
        if not traj:
            raise InputError(f"the {self.cfg.strategy} search evaluated nothing")
        best = max(traj, key=lambda r: (r["accuracy"], -r["latency_ms"]))
        front = pareto_front([r["accuracy"] for r in traj], [r["latency_ms"] for r in traj])
        return {"best": best, "front": [traj[i] for i in front], "trajectory": traj, "evaluations": len(traj),
                "scored": len(self.prefilter.keys), "removed_by": dict(self.constraints.removed)}
