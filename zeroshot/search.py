"""Multi-shot architecture search under device constraints, with a pluggable evaluator.

:func:`run_search` drives a strategy (:mod:`zeroshot.strategies`: ``random``, ``evolution``,
``prefiltered``, ``zeroshot``) through a :class:`SearchContext`, which owns everything strategies share:

* the **constraints**: every candidate is costed by the estimator (:class:`~zeroshot.estimator.segmented.
  SegmentedEvaluator`: latency on ``device``, params) before anything else; one breaking
  ``max_latency_ms`` / ``max_params`` is never scored nor trained;
* the **budget**: ``budget`` evaluations (trainings); an architecture isomorphic to one already evaluated
  is never evaluated again;
* the **pre-filter** (:class:`ProxyScorer`, :meth:`SearchContext.prefilter`): the funnel in small, its
  cheap topology proxy (``cheap``) ranks a batch, the best few get the score's network proxies, and the
  rank-aggregated score (:func:`zeroshot.score.rank_aggregate`) over every candidate scored so far decides;
* the **evaluator**: :class:`OracleEvaluator` (a table of known accuracies, for benchmarking searchers) or
  :class:`TrainingEvaluator` (real training, :mod:`zeroshot.train`, as local or Ray tasks);
* the **record**: every evaluation goes to the results database (kind ``search``) and to ``log``.

The result names the best architecture (highest accuracy, then lowest latency) and the Pareto front of
(accuracy, latency) of everything evaluated.

Example
-------
>>> import numpy as np
>>> from zeroshot.spaces import get_space
>>> space = get_space("nb201")
>>> table = {a: float(space.to_ir(a).params) for a in space.sample(200, seed=1)}
>>> cfg = SearchConfig(space="nb201", strategy="random", budget=5, proxies=("live_macs",))
>>> result = run_search(cfg, DictEvaluator(table))
>>> len(result["trajectory"]), result["best"]["accuracy"] == max(r["accuracy"] for r in result["trajectory"])
(5, True)
"""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

from zeroshot.estimator.devices import load_device
from zeroshot.estimator.segmented import SegmentedEvaluator, count_metrics, latency_metric

from .batches import Data
from .errors import UserError
from .funnel import ScreenConfig, pareto_front
from .proxies import get_proxy
from .score import DEFAULT_PROXIES, compute_proxies, rank_aggregate

SCORED, EVALUATED = 1, 2          # stages of a search run's candidates in the results database


@dataclass
class SearchConfig:
    """A search.  Strategy settings (population ... network_per_kept) are documented in
    :mod:`zeroshot.strategies`; ``train`` holds :class:`~zeroshot.train.TrainConfig` fields."""

    space: str
    strategy: str
    budget: int
    space_options: dict = field(default_factory=dict)
    seed: int = 0
    device: str = "mobile-npu-16"
    max_latency_ms: float | None = None
    max_params: float | None = None
    proxies: tuple = DEFAULT_PROXIES
    data: str | None = None
    batch_size: int = 64
    population: int = 10
    sample: int = 3
    children: int = 24
    pool: int = 1000
    network_per_kept: int = 4
    cheap: str = ScreenConfig.cheap
    parallel: int = 1
    oracle: str | None = None
    column: str | None = None
    train: dict = field(default_factory=dict)

    def constraints(self) -> dict[str, float]:
        c = {"latency_ms": self.max_latency_ms, "params": self.max_params}
        return {k: float(v) for k, v in c.items() if v is not None}


# ------------------------------------------------------------------ evaluators
class DictEvaluator:
    """Accuracies from a dict ``{canonical encoding: accuracy}``; architectures it lacks are skipped by
    the search like infeasible ones.  Evaluating is free (a lookup) and costs one unit of budget."""

    def __init__(self, table: dict[str, float], source: str = "the table"):
        self.table, self.source = table, source

    def covers(self, archs: Sequence[str]) -> np.ndarray:
        return np.array([a in self.table for a in archs], dtype=bool)

    def __call__(self, archs: Sequence[str]) -> list[dict]:
        return [{"accuracy": self.table[a]} for a in archs]


class OracleEvaluator(DictEvaluator):
    """A CSV of known accuracies: encodings in a column ``arch`` or ``arch_str``, the accuracy in
    ``column``.  Encodings are parsed by the space and keyed by their canonical form."""

    def __init__(self, path: str, column: str | None, space):
        if not column:
            raise UserError(f"--oracle {path} needs --column NAME, the column holding the accuracy")
        try:
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                header = reader.fieldnames or []
                key = next((k for k in ("arch", "arch_str") if k in header), None)
                if key is None or column not in header:
                    missing = "column 'arch' or 'arch_str'" if key is None else f"column {column!r}"
                    raise UserError(f"oracle {path} has no {missing}; its columns: {', '.join(header) or 'none'}")
                table = {}
                for line, row in enumerate(reader, 2):
                    try:
                        arch = space.format(space.parse(row[key]))
                        table[arch] = float(row[column])
                    except (ValueError, TypeError) as e:
                        raise UserError(f"oracle {path} line {line}: {e}") from None
        except OSError as e:
            raise UserError(f"cannot read oracle {path}: {e.strerror}") from None
        if not table:
            raise UserError(f"oracle {path} holds no architectures")
        super().__init__(table, path)


class TrainingEvaluator:
    """Real training of each architecture on ``data`` (a path), one backend task per training; on a Ray
    cluster with GPUs each task asks for one GPU and trains on it."""

    def __init__(self, cfg: SearchConfig, backend=None):
        from .backends import LocalBackend
        from .train import TrainConfig
        if not cfg.data:
            raise UserError("a search without --oracle trains for real and needs --data (an NPZ or image folder)")
        TrainConfig(**cfg.train).validate()
        self.cfg, self.backend = cfg, backend or LocalBackend(1)
        self.resources, self.device = {}, cfg.train.get("device", "cpu")
        ray = getattr(self.backend, "ray", None)
        if ray is not None and ray.cluster_resources().get("GPU", 0) >= 1:
            self.resources, self.device = {"num_gpus": 1}, "auto"

    def covers(self, archs: Sequence[str]) -> np.ndarray:
        return np.ones(len(archs), dtype=bool)

    def __call__(self, archs: Sequence[str]) -> list[dict]:
        from .train import train_job
        jobs = [{"space": self.cfg.space, "space_options": self.cfg.space_options, "arch": a, "data": self.cfg.data,
                 "config": dict(self.cfg.train, device=self.device)} for a in archs]
        out = self.backend.map(train_job, jobs, resources=self.resources)
        return [dict(m, accuracy=m["val_accuracy"]) for m in out]


# ------------------------------------------------------------------ zero-shot scores
class ProxyScorer:
    """Proxy values of architectures: topology proxies cached per encoding in memory, network proxies
    computed once per isomorphism class and cached in ``cache`` (canonical encoding -> {proxy: value});
    pass a dict loaded from a file to reuse values across runs (the benchmark does).  ``names`` are the
    proxies :meth:`values` gives by default; any registered proxy can be asked for."""

    def __init__(self, space, names: Sequence[str], data: Data | None, seed: int = 0, batch_size: int = 64,
                 cache: dict | None = None):
        self.space, self.names, self.data, self.seed, self.batch_size = space, tuple(names), data, seed, batch_size
        self.cache = {} if cache is None else cache
        self._topology_cache: dict[str, dict] = {}

    def values(self, codes: np.ndarray, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        names = list(self.names if names is None else names)
        out = {}
        for kind, cache in (("topology", self._topology_cache), ("network", self.cache)):
            wanted = [n for n in names if get_proxy(n).kind == kind]
            if not wanted:
                continue
            rows = codes if kind == "topology" else self.space.canonical_codes(codes)
            keys = [self.space.format(c) for c in rows]
            todo = sorted({k for k in keys if not all(n in cache.get(k, {}) for n in wanted)})
            if todo:
                new = compute_proxies(self.space, np.array([self.space.parse(k) for k in todo]), wanted,
                                      self.data, self.seed, self.batch_size)
                for i, k in enumerate(todo):
                    cache.setdefault(k, {}).update({n: float(new[n][i]) for n in wanted})
            out.update({n: np.array([cache[k][n] for k in keys], dtype=np.float64) for n in wanted})
        return {n: out[n] for n in names}

    def needs_network(self) -> bool:
        return any(get_proxy(n).kind == "network" for n in self.names)


# ------------------------------------------------------------------ the context strategies use
_COST: dict = {}


def cost_evaluator(cfg: SearchConfig, space) -> SegmentedEvaluator:
    """params, MACs, peak memory and latency on ``cfg.device``; one evaluator (and its segment cache) per
    space configuration and device in a process, shared by successive searches."""
    key = (cfg.space, json.dumps(cfg.space_options, sort_keys=True), cfg.device, getattr(space, "curated", None))
    if key not in _COST:
        metrics = count_metrics()
        metrics["latency_ms"] = latency_metric(load_device(cfg.device).for_space(space.name))
        _COST[key] = SegmentedEvaluator(space, metrics)
    return _COST[key]


class SearchContext:
    """What strategies share (see the module docstring).  Codes are int64 rows of the space."""

    def __init__(self, cfg: SearchConfig, space, evaluator, scorer: ProxyScorer | None = None,
                 log: Callable[[dict], None] | None = None, store=None, run_id: int | None = None):
        self.cfg, self.space, self.evaluator, self.log = cfg, space, evaluator, log
        self.store, self.run_id = store, run_id
        self.rng = np.random.default_rng(cfg.seed)
        self.cost = cost_evaluator(cfg, space)
        self.constraints = cfg.constraints()
        self.scorer = scorer
        self.evaluated: dict[str, dict] = {}       # canonical encoding -> record
        self.trajectory: list[dict] = []
        self.book_keys: list[str] = []             # every pre-filter-scored candidate (canonical), in order
        self.book_index: dict[str, int] = {}
        self.book_codes: list[np.ndarray] = []     # the first code vector seen of each
        self.book_values: dict[str, list] = {n: [] for n in cfg.proxies}
        self.removed = {k: 0 for k in self.constraints}
        self.uncovered = 0
        self._scored_chunks = 0

    # ---------------------------------------------------------- candidates
    def canonical(self, codes: np.ndarray) -> list[str]:
        return [self.space.format(c) for c in self.space.canonical_codes(codes)]

    def feasible(self, codes: np.ndarray) -> np.ndarray:
        """Mask of rows within the constraints and known to the evaluator (counts what each removes)."""
        codes = np.asarray(codes, dtype=np.int64).reshape(-1, self.space.code_length)
        m = self.cost.evaluate(codes)
        ok = np.ones(len(codes), dtype=bool)
        for name, limit in self.constraints.items():
            bad = m[name] > limit
            self.removed[name] += int((bad & ok).sum())
            ok &= ~bad
        covered = self.evaluator.covers([self.space.format(c) for c in codes])
        self.uncovered += int((ok & ~covered).sum())
        return ok & covered

    def fresh(self, codes: np.ndarray, exclude: set[str] = frozenset()) -> np.ndarray:
        """Feasible rows not evaluated yet, one per isomorphism class, in order."""
        codes = np.asarray(codes, dtype=np.int64).reshape(-1, self.space.code_length)
        keys = self.canonical(codes)
        seen = set(self.evaluated) | set(exclude)
        keep = []
        for i, k in enumerate(keys):
            if k not in seen:
                seen.add(k)
                keep.append(i)
        codes = codes[keep]
        return codes[self.feasible(codes)] if len(codes) else codes

    def sample(self, n: int, exclude: set[str] = frozenset()) -> np.ndarray:
        """Up to ``n`` distinct fresh feasible random candidates; a clear error when none can be found."""
        out = np.empty((0, self.space.code_length), dtype=np.int64)
        for _ in range(50):
            if len(out) >= n:
                break
            draw = self.space.sample_codes(max(2 * (n - len(out)), 16), self.rng)
            out = np.concatenate([out, self.fresh(draw, exclude | set(self.canonical(out)))])
        if not len(out) and not self.evaluated:
            self._nothing_feasible()
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

    def _nothing_feasible(self):
        if self.constraints and max(self.removed.values()) > 0:
            tight = max(self.removed, key=self.removed.get)
            raise UserError(f"no candidate satisfies the constraints; {tight} <= {self.constraints[tight]:g} "
                            f"removed {self.removed[tight]:,} of the sampled candidates: relax it")
        if self.uncovered:
            raise UserError(f"no sampled candidate is in the oracle {getattr(self.evaluator, 'source', '')}; "
                            f"it must cover the space being searched")
        raise UserError("the space has no candidate left to evaluate")

    # ---------------------------------------------------------- zero-shot scores
    def _book(self, codes: np.ndarray) -> list[int]:
        """Add candidates to the book of scored ones (all proxies); their book positions."""
        keys = self.canonical(codes)
        new = sorted({k: i for i, k in enumerate(keys) if k not in self.book_index}.items(), key=lambda t: t[1])
        if new:
            values = self.scorer.values(codes[[i for _, i in new]])
            for j, (k, i) in enumerate(new):
                self.book_index[k] = len(self.book_keys)
                self.book_keys.append(k)
                self.book_codes.append(codes[i])
                for n in self.cfg.proxies:
                    self.book_values[n].append(values[n][j])
            self._record_scored(codes[[i for _, i in new]], values)
        return [self.book_index[k] for k in keys]

    def scores(self, codes: np.ndarray) -> np.ndarray:
        """Rank-aggregated score of candidates among every candidate scored so far (higher is better)."""
        pos = self._book(codes)
        total = rank_aggregate({n: np.array(v) for n, v in self.book_values.items()})
        return total[pos]

    def prefilter(self, codes: np.ndarray, keep: int) -> np.ndarray:
        """The ``keep`` best of ``codes`` by the zero-shot score, best first.  When the score needs a
        network, only the best ``network_per_kept`` x ``keep`` by the funnel's cheap topology proxy
        (``cheap``) pay for it."""
        if self.scorer is None:
            raise UserError(f"strategy {self.cfg.strategy!r} needs zero-shot proxies")
        if not len(codes):
            return codes
        n_net = self.cfg.network_per_kept * keep
        if self.cfg.cheap and self.scorer.needs_network() and n_net < len(codes):
            cheap = rank_aggregate(self.scorer.values(codes, [self.cfg.cheap]))
            codes = codes[np.argsort(-cheap, kind="stable")[:n_net]]
        s = self.scores(codes)
        return codes[np.argsort(-s, kind="stable")[:keep]]

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
            if self.store is not None:
                extra = {m: v for m, v in res.items() if m != "accuracy" and isinstance(v, (int, float))}
                self.store.write_chunk(self.run_id, rec["step"], [(a, EVALUATED, dict(
                    extra, **{m: rec[m] for m in ("accuracy", "latency_ms", "params", "macs", "step")}))],
                    stage_marker=EVALUATED)
            if self.log:
                self.log(rec)
        return records

    def _record_scored(self, codes: np.ndarray, values: dict) -> None:
        if self.store is None:
            return
        cost = self.cost.evaluate(codes)
        rows = [(self.space.format(c), SCORED, {**{n: values[n][i] for n in values},
                                                 "latency_ms": cost["latency_ms"][i], "params": cost["params"][i]})
                for i, c in enumerate(codes)]
        self._scored_chunks += 1
        self.store.write_chunk(self.run_id, self._scored_chunks, rows, stage_marker=SCORED)

    # ---------------------------------------------------------- result
    def result(self) -> dict:
        traj = self.trajectory
        if not traj:
            raise UserError("the search evaluated nothing; raise --budget")
        best = max(traj, key=lambda r: (r["accuracy"], -r["latency_ms"]))
        acc = np.array([r["accuracy"] for r in traj])
        lat = np.array([r["latency_ms"] for r in traj])
        front = [traj[i] for i in sorted(pareto_front(acc, lat).tolist(), key=lambda i: lat[i])]
        return {"best": best, "front": front, "trajectory": traj, "evaluations": len(traj),
                "scored": len(self.book_keys), "removed_by": dict(self.removed)}


def run_search(cfg: SearchConfig, evaluator, db: str | None = None, scorer: ProxyScorer | None = None,
               data: Data | None = None, log: Callable[[dict], None] | None = None, space=None) -> dict:
    """Run ``cfg.strategy`` with ``evaluator``; record it in ``db`` (a results database) when given.

    ``scorer`` defaults to a :class:`ProxyScorer` of ``cfg.proxies`` on ``data`` (the first
    ``cfg.batch_size`` images; synthetic input when None).  ``space``: an already-built space object
    (one with a custom raw description, which ``cfg.space_options`` cannot carry); by default
    ``get_space(cfg.space, **cfg.space_options)``."""
    from zeroshot.spaces import get_space

    from .store import ResultStore
    from .strategies import get_strategy
    strategy = get_strategy(cfg.strategy)
    if cfg.budget < 1:
        raise UserError(f"--budget must be at least 1 evaluation, got {cfg.budget}")
    for name in ("population", "sample", "children", "pool", "parallel", "network_per_kept"):
        if getattr(cfg, name) < 1:
            raise UserError(f"{name} must be at least 1, got {getattr(cfg, name)}")
    if cfg.sample > cfg.population:
        raise UserError(f"the tournament sample ({cfg.sample}) cannot exceed the population ({cfg.population})")
    if cfg.cheap and get_proxy(cfg.cheap).kind != "topology":
        raise UserError(f"the cheap proxy must be a topology proxy (no network); {cfg.cheap!r} needs one")
    space = get_space(cfg.space, **cfg.space_options) if space is None else space
    if scorer is None:
        for n in cfg.proxies:
            get_proxy(n)
        scorer = ProxyScorer(space, cfg.proxies, data, cfg.seed, cfg.batch_size)
    store = run_id = None
    if db:
        store = ResultStore(db, space=cfg.space, space_options=cfg.space_options)
        run_id = store.new_run(asdict(cfg), kind="search")
    ctx = SearchContext(cfg, space, evaluator, scorer, log, store, run_id)
    try:
        strategy(ctx)
        result = ctx.result()
        if store is not None:
            store.finish_run(run_id, {k: result[k] for k in ("best", "front", "evaluations", "scored", "removed_by")})
            result["run_id"] = run_id
    finally:
        if store is not None:
            store.close()
    return result


def print_line(rec: dict, file=None) -> None:
    """One trajectory line: step, accuracy, best so far, latency and the encoding."""
    print(f"{rec['step']:5d}  acc {rec['accuracy']:7.3f}  best {rec['best']:7.3f}  {rec['latency_ms']:9.4f} ms  "
          f"{rec['arch']}", file=file, flush=True)
