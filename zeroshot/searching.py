"""Multi-shot architecture search under device constraints: :func:`search`, the Python entry point.

A search is three parts, as in Optuna: a **strategy** proposes candidates (:mod:`zeroshot.strategies`:
``random``, ``evolution``, ``prefiltered``, ``zeroshot``), a **study** evaluates them (:mod:`zeroshot.study`:
cost and constraints, zero-shot pre-filter scores, the evaluator, the budget, the trajectory) and the
results **store** (:mod:`zeroshot.store`) persists them when a database is given.  The evaluator
(:mod:`zeroshot.evaluators`) looks accuracies up in an oracle table (benchmarking searchers) or trains each
candidate for real.

The result names the best architecture (highest accuracy, then lowest latency), the trajectory of every
evaluation and the Pareto front of (accuracy, latency) of everything evaluated.  ``zeroshot search`` is a
thin layer over :func:`search`: its numbers are these.

Example
-------
>>> import os, tempfile
>>> from zeroshot.spaces import get_space
>>> space = get_space("nb201")
>>> oracle = os.path.join(tempfile.mkdtemp(), "oracle.csv")
>>> with open(oracle, "w") as f:
...     _ = f.write("arch,acc\\n" + "".join(f"{a},{space.to_ir(a).params / 1e4}\\n" for a in space.sample(300, seed=1)))
>>> r = search("nb201", strategy="evolution", budget=12, oracle=oracle, column="acc", population=4, sample=2)
>>> len(r.trajectory), bool(r.accuracy == r.trajectory["accuracy"].max()), r.front.row(-1) == r.best
(12, True, True)
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, fields, replace
from typing import Callable

import numpy as np

from zeroshot.spaces import get_space

from .batches import Data, validate
from .checks import check_int, check_seed
from .constraints import Constraints
from .errors import ParameterError
from .evaluators import OracleEvaluator, TrainingEvaluator
from .funnel import ScreenConfig
from .prefilter import ProxyScorer
from .proxies import get_proxy
from .scoring import DEFAULT_PROXIES
from .store import ResultStore
from .study import Study, cost_evaluator
from .table import Table

__all__ = ["SearchConfig", "SearchResult", "print_line", "run_search", "search"]


@dataclass
class SearchConfig:
    """A search.  Strategy settings (population ... network_per_kept) are documented in
    :mod:`zeroshot.strategies` (``population=None``: the strategy's own default); ``train`` holds :class:`~zeroshot.train.TrainConfig` fields."""

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
    population: int | None = None
    sample: int = 3
    children: int = 24
    pool: int = 3000
    network_per_kept: int = 4
    tournament: int = 2
    cheap_tournament: int = 2
    cheap: str = ScreenConfig.cheap
    parallel: int = 1
    oracle: str | None = None
    column: str | None = None
    train: dict = field(default_factory=dict)

    def check(self) -> None:
        """:class:`~zeroshot.errors.ParameterError` naming the first setting out of range."""
        check_seed(self.seed)
        for name in ("budget", "population", "sample", "children", "pool", "parallel", "network_per_kept"):
            check_int(name, getattr(self, name), 1)
        for name, what in (("tournament", "score"), ("cheap_tournament", "cheap proxy")):
            check_int(name, getattr(self, name), 0, f"an integer >= 0 (0: the pre-filter keeps the best by {what})")
        if self.sample > self.population:
            raise ParameterError("sample", f"at most the population ({self.population}): tournaments draw "
                                           f"from it", self.sample)
        if self.cheap and get_proxy(self.cheap).kind != "topology":
            raise ParameterError("cheap", "a topology proxy (one that needs no network)", self.cheap)
        Constraints.from_config(self)                   # checks the maxima

    def as_dict(self) -> dict:
        """The settings as JSON-ready values (a device object by its name)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**out, "device": getattr(self.device, "name", self.device)}


@dataclass
class SearchResult:
    """What a search found: the ``best`` evaluation (a dict: ``arch``, ``accuracy``, ``latency_ms``,
    ``params``, ``macs``, ``step``), every evaluation in order (``trajectory``, a
    :class:`~zeroshot.table.Table`; ``best`` there is the best accuracy so far), the Pareto ``front`` of
    (accuracy, latency) by increasing latency, the candidates ``scored`` zero-shot, those each constraint
    removed (``removed_by``) and the ``run_id`` in the results database (None without one)."""

    best: dict
    trajectory: Table
    front: Table
    evaluations: int
    scored: int
    removed_by: dict
    run_id: int | None = None

    @property
    def arch(self) -> str:
        return self.best["arch"]

    @property
    def accuracy(self) -> float:
        return self.best["accuracy"]

    @property
    def latency_ms(self) -> float:
        return self.best["latency_ms"]

    @classmethod
    def from_run(cls, run: dict) -> "SearchResult":
        """The result of :func:`run_search`'s dict."""
        return cls(best=run["best"], trajectory=Table.from_rows(run["trajectory"]),
                   front=Table.from_rows(run["front"]), evaluations=run["evaluations"], scored=run["scored"],
                   removed_by=run["removed_by"], run_id=run.get("run_id"))


def search(space, strategy: str = "prefiltered", budget: int = 50, oracle: str | None = None,
           column: str | None = None, data=None, seed: int = 0, device="mobile-npu-16", db: str | None = None,
           *, space_options: dict | None = None, train: dict | None = None, backend=None,
           log: Callable[[dict], None] | None = None, **settings) -> SearchResult:
    """Search ``space`` (a name, built with ``space_options``, or a SearchSpace) with ``strategy`` for
    ``budget`` evaluations; the :class:`SearchResult`.

    ``oracle``: a CSV of known accuracies (encodings in a column ``arch`` or ``arch_str``, accuracies in
    ``column``); without one, each candidate is trained for real on ``data`` (``train``: TrainConfig fields;
    ``backend``: where trainings run, :mod:`zeroshot.backends`).  ``data``: an NPZ path (or image folder)
    or an ``(x, y)`` pair of arrays; the pre-filter's proxies see ``batch_size`` of its images drawn by
    ``seed``, which also seeds their networks' weights (seeded synthetic input without data): the seed is
    the whole run's.  ``device``: the hardware cost profile of the latency (a name, a ``.json``
    path or a device object).  ``db``: a results database to record the run in (none: in memory only).
    ``log(record)`` is called after each evaluation.  ``settings``: more :class:`SearchConfig` fields
    (``max_latency_ms``, ``max_params``, ``proxies``, ``population``, ``sample``, ``children``, ``pool``,
    ``cheap``, ``batch_size``, ``network_per_kept``, ``tournament``, ``cheap_tournament``, ``parallel``)."""
    from .api import proxy_names, resolve_device, resolve_space
    resolved = resolve_space(space, **(space_options or {}))
    if resolved is None:
        raise ParameterError("space", "a space name (zeroshot.list_spaces()) or a space object", None)
    if log is not None and not callable(log):
        raise ParameterError("log", "a function of one record (a dict), or None", type(log).__name__)
    allowed = {f.name for f in fields(SearchConfig)} - {"space", "strategy", "budget", "space_options", "seed",
                                                        "device", "data", "oracle", "column", "train"}
    for name in settings:
        if name not in allowed:
            raise TypeError(f"search() got an unexpected keyword argument {name!r}")
    if "proxies" in settings:
        settings["proxies"] = tuple(proxy_names(settings["proxies"]))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SearchConfig(space=resolved.name, strategy=strategy, budget=budget, space_options=space_options or {},
                           seed=seed, device=device if isinstance(device, str) else resolve_device(device),
                           oracle=oracle, column=column, data=_data_path(data, None if oracle else tmp),
                           train={"seed": seed, **(train or {})}, **settings)
        if oracle is not None:
            evaluator = OracleEvaluator(oracle, column, resolved)
        else:
            evaluator = TrainingEvaluator(cfg.space, cfg.space_options, cfg.data, cfg.train, backend)
        run = run_search(cfg, evaluator, db=db, data=_proxy_data(data, resolved), log=log,
                         space=None if isinstance(space, str) else resolved)     # by name: shared cost cache
    return SearchResult.from_run(run)


def _data_path(data, tmp: str | None) -> str | None:
    """``data`` as a path: as given, or an ``(x, y)`` pair saved as an NPZ in ``tmp`` (not saved without)."""
    if data is None or isinstance(data, (str, os.PathLike)):
        return None if data is None else os.fspath(data)
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ParameterError("data", "an .npz path, an image folder, an (x, y) pair of arrays or None",
                             type(data).__name__)
    if tmp is None:
        return None
    path = os.path.join(tmp, "data.npz")
    np.savez(path, x=np.asarray(data[0]), y=np.asarray(data[1]))
    return path


def _proxy_data(data, space) -> Data | None:
    """``data`` (see :func:`search`; a path or an (x, y) pair) read and checked against the input and
    classes of ``space``'s networks, for the pre-filter's proxies; None stays None."""
    if data is None:
        return None
    from .training_sets import load_dataset
    arch = space.build_ir(space.sample_codes(1, np.random.default_rng(0))[0])
    shape, classes = arch.input_shape, arch.tensor_shape(arch.outputs[0])[0]
    if isinstance(data, (str, os.PathLike)):
        return load_dataset(os.fspath(data), shape, classes)
    return validate(np.asarray(data[0]), np.asarray(data[1]), shape, classes, source="data")


def run_search(cfg: SearchConfig, evaluator, db: str | None = None, scorer: ProxyScorer | None = None,
               data: Data | None = None, log: Callable[[dict], None] | None = None, space=None) -> dict:
    """Run ``cfg.strategy`` with ``evaluator`` (:mod:`zeroshot.evaluators`); record it in ``db`` (a results
    database) when given.  Returns the study's result (:meth:`~zeroshot.study.Study.result`) as a dict, with
    the ``run_id`` when recorded.

    ``scorer`` defaults to a :class:`~zeroshot.prefilter.ProxyScorer` of ``cfg.proxies`` on ``data``
    (``cfg.batch_size`` images drawn by ``cfg.seed``, weights seeded by it; synthetic input when None).
    ``space``: an already-built space object (one with a custom raw description, which
    ``cfg.space_options`` cannot carry); by default ``get_space(cfg.space, **cfg.space_options)``."""

    from .strategies import DEFAULT_POPULATION, get_strategy
    strategy = get_strategy(cfg.strategy)
    defaults = getattr(strategy, "defaults", {"population": DEFAULT_POPULATION})   # set by register_strategy
    cfg = replace(cfg, **{k: v for k, v in defaults.items() if getattr(cfg, k) is None})
    cfg.check()
    if space is None:
        space = get_space(cfg.space, **cfg.space_options)
        cost = cost_evaluator(space, cfg.device, (cfg.space, json.dumps(cfg.space_options, sort_keys=True),
                                                  getattr(space, "curated", None)))
    else:
        cost = cost_evaluator(space, cfg.device)
    if scorer is None:
        for n in cfg.proxies:
            get_proxy(n)
        scorer = ProxyScorer(space, cfg.proxies, data, cfg.seed, cfg.batch_size)
    store = run_id = None
    if db:
        store = ResultStore(db, space=cfg.space, space_options=cfg.space_options)
        run_id = store.new_run(cfg.as_dict(), kind="search")
    try:
        study = Study(cfg, space, evaluator, scorer, log, store, run_id, cost)
        strategy(study)
        result = study.result()
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
