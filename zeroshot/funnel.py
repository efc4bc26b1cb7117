"""The screening funnel: millions of candidates in, a shortlist worth training out.

Stages, each cheaper per candidate than the next:

1. sample (or enumerate) candidates in seeded chunks and de-duplicate;
2. hardware cost (exact counts, device latency, model bytes) and topology-only proxies for whole chunks
   (Cython, segment cache); drop what breaks the constraints (:class:`~zeroshot.constraints.Constraints`);
3. keep the best ``survivors`` by the cheap score plus the Pareto front of (cheap score, latency);
4. network proxies (torch, shared passes) on ``scored`` of the best survivors (:func:`scored_survivors`:
   the largest input side first where the codes hold it, as mbv2's do, since the default score grows with
   it and the cheap score ignores it), at ``proxy_scale`` times their input side (mbv2 by default 0.75:
   120-168 px instead of 160-224 px, at 0.56 of the cost); how the default run's shortlist agrees with full
   resolution, batch 64 and every survivor scored: ``benchmarks/results/screen_default_run.md``; a
   detection or segmentation candidate on its backbone with the classification head (:func:`network_chunk`);
5. shortlist the top ``top`` by the default score plus the Pareto front of (score, latency).

Chunk ``i`` is a pure function of (config, i), results are consumed in chunk order, and each chunk is
written to the store in one transaction: results are identical whatever the backend and worker count, and a
killed run resumes losing at most the chunk in flight.  :func:`screen` is the Python entry point (in memory
unless ``db`` is given); :func:`run_screen` runs a :class:`ScreenConfig` into a results database.

Example
-------
>>> r = screen("nb201", n=2000, survivors=0, top=3, seed=0)
>>> r.counts["sampled"] > r.counts["passed"] - 1 and len(r.shortlist) == 3
True
>>> bool((r.pareto["latency_ms"][1:] >= r.pareto["latency_ms"][:-1]).all())    # the front, by latency
True
"""
from __future__ import annotations

import contextlib
import os
import time
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from numbers import Real

import numpy as np

from zeroshot.estimator.counts import bytes_per_element
from zeroshot.estimator.devices import Device, device_from_dict, load_device
from zeroshot.estimator.estimate import Estimator
from zeroshot.estimator.segmented import whole_values
from zeroshot.spaces import get_space, to_table
from zeroshot.spaces.ir import Arch

from .allocator import keep_freed_memory
from .checks import check_batch_size, check_int, check_seed
from .constraints import Constraints
from .errors import EncodingError, InputError, ParameterError, StoreError
from .pareto import pareto_front
from .progress import progress
from .code_blocks import PackedCodes, pack_codes
from .store import ResultStore
from .table import Table

__all__ = ["DEFAULT_BASELINE", "ScreenConfig", "ScreenResult", "baseline_encoding", "cheap_metrics", "chunk_codes",
           "brief_row",
           "cost_chunks", "n_chunks", "proxy_codes", "run_screen", "scored_survivors", "screen"]

#: the baseline a screen compares with by default, in a space that has it (spaces/baselines.py)
DEFAULT_BASELINE = "mobilenetv2"

@dataclass
class ScreenConfig:
    """A screen: the parameters of :func:`screen` (see there)."""

    space: str
    space_options: dict = field(default_factory=dict)
    n: int | None = 100_000
    all: bool = False
    device: str | dict = "mobile-npu-16"    # a name, a device JSON file, or a device's to_dict() (JSON, picklable)
    max_latency_ms: float | None = None
    max_params: float | None = None
    max_peak_kb: float | None = None
    max_model_bytes: float | None = None
    survivors: int = 200
    scored: int | None = 64         # survivors given network proxies: largest inputs first (see the docstring)
    top: int = 10
    seed: int = 0
    chunk: int = 20_000
    precision: str = "fp32"
    cheap: str = "entropy"
    data: str | None = None
    batch_size: int = 16            # swap reads 16 samples, meco one input: a larger batch only costs time
    proxy_scale: float = 0.75       # stage 4 input side, relative to each candidate's own (see the docstring)
    baseline: str | None = "default"    # a baseline name of the space or an encoding; "default"; None: none
    min_score: str | float | None = "baseline"      # shortlist floor: the baseline's score, a value, or None

    def constraints(self) -> dict[str, float]:
        """Active constraints as metric name -> maximum."""
        return Constraints.from_config(self).limits


@dataclass(repr=False)
class ScreenResult:
    """What a screen found: ``shortlist`` (the top rows by the score, best first) and ``pareto`` (the front
    of score vs latency, by latency) as :class:`~zeroshot.table.Table`; ``counts`` (stage -> candidates
    reaching it); ``summary`` (what ``zeroshot screen --json`` prints); ``run_id`` in ``db`` (None: in
    memory)."""

    shortlist: Table
    pareto: Table
    counts: dict
    summary: dict
    run_id: int
    db: str | None

    def __repr__(self) -> str:
        return (f"ScreenResult(run_id={self.run_id}, counts={self.counts}, shortlist={len(self.shortlist)} rows, "
                f"pareto={len(self.pareto)} rows, db={self.db!r})")


# ------------------------------------------------------------------ worker side (pure functions)
_WORKER: dict = {}


def _init_worker(cfg_dict: dict) -> None:
    key = repr(sorted(cfg_dict.items()))
    if _WORKER.get("key") == key:
        return
    keep_freed_memory()             # spawned workers do not inherit the command line's setting
    cfg = ScreenConfig(**cfg_dict)
    space = get_space(cfg.space, **cfg.space_options)
    estimator = Estimator(space, _device(cfg.device), cfg.precision, extra=cheap_metrics(cfg.cheap))
    _WORKER.update(key=key, cfg=cfg, space=space, estimator=estimator)


def _device(device: str | dict) -> Device:
    """The device of :attr:`ScreenConfig.device`: a name or JSON file (:func:`load_device`), or a description."""
    return device_from_dict(device) if isinstance(device, dict) else load_device(device)


def cheap_metrics(name: str) -> dict:
    """The cheap (topology-only) score as a segment metric named ``cheap``, higher is better (a ``product``
    proxy's logarithm: :func:`zeroshot.proxies.topology.segment_metric`)."""
    from .proxies import get_proxy, list_proxies
    from .proxies.topology import segment_metric
    proxy = get_proxy(name)
    if proxy.kind != "topology":
        raise ParameterError("cheap", "a topology proxy (no network)", name,
                             f"choose from {', '.join(list_proxies('topology'))}")
    fn, reduce = segment_metric(proxy)
    sign = 1.0 if proxy.higher_is_better else -1.0
    return {"cheap": (lambda table: sign * fn(table), reduce)}


def chunk_codes(cfg: ScreenConfig, space, i: int) -> np.ndarray:
    """Candidates of chunk ``i``: an enumeration slice, or a sample seeded by (seed, i)."""
    if cfg.all:
        start = i * cfg.chunk
        return _enumeration(space)[start:start + cfg.chunk]
    size = min(cfg.chunk, cfg.n - i * cfg.chunk)
    return space.sample_codes(size, np.random.default_rng([cfg.seed, i]))


def _enumeration(space) -> np.ndarray:
    if "enum" not in _WORKER or _WORKER.get("enum_space") is not space:
        _WORKER["enum"] = np.concatenate(list(space.enumerate_codes()))
        _WORKER["enum_space"] = space
    return _WORKER["enum"]


def cost_chunk(i: int) -> tuple[int, dict]:
    """Stages 1-2 of chunk ``i`` (worker side): the metrics of its candidates."""
    return i, _WORKER["estimator"].evaluate(chunk_codes(_WORKER["cfg"], _WORKER["space"], i))


def coded_cost_chunk(i: int) -> tuple[int, dict, PackedCodes]:
    """:func:`cost_chunk` and the chunk's codes packed with their hashes (:func:`pack_codes`: sent between
    processes in less time than the caller would take to sample them again, and hashed here in parallel)."""
    codes = chunk_codes(_WORKER["cfg"], _WORKER["space"], i)
    return i, _WORKER["estimator"].evaluate(codes), pack_codes(codes)


def proxy_codes(space, codes: np.ndarray, scale: float) -> np.ndarray:
    """The networks stage 4 scores: each candidate with its input side times ``scale`` (rounded, at least
    32 pixels) in a space whose codes hold the resolution (``space.resolution_column``); others as they are."""
    column = getattr(space, "resolution_column", None)
    if column is None or scale == 1:
        return codes
    out = np.array(codes, dtype=np.int64)
    out[:, column] = np.maximum(32, np.rint(out[:, column] * scale)).astype(np.int64)
    return out


def network_chunk(archs: list[str]) -> list[dict]:
    """Stage 4 (worker side): the default score's proxies of a few architectures, each at its own input
    resolution times ``proxy_scale`` (the ``data`` images resized, or seeded synthetic input of that
    shape), on its proxy view (:func:`zeroshot.refine.proxy_view`: a detection or segmentation network's
    backbone with the classification head, whose maps are never 1x1 where train-mode BN sees one value)."""
    import torch

    from .batches import load_data
    from .refine import proxy_view
    from .scoring import DEFAULT_PROXIES, compute_proxies
    cfg, space = _WORKER["cfg"], _WORKER["space"]
    view, _ = proxy_view(space)
    codes = proxy_codes(space, np.array([space.parse(a) for a in archs], dtype=np.int64), cfg.proxy_scale)
    if cfg.data and "data" not in _WORKER:
        _WORKER["data"] = load_data(cfg.data)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)        # as in the workers: conv sums differ in the last bits with the threads
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "swap reads", UserWarning)      # said once by validate
            values = compute_proxies(view, codes, DEFAULT_PROXIES, _WORKER.get("data"), cfg.seed,
                                     cfg.batch_size)
    finally:
        torch.set_num_threads(threads)
    return [{name: float(v[i]) for name, v in values.items()} for i in range(len(archs))]


# ------------------------------------------------------------------ coordinator
def cost_chunks(cfg: ScreenConfig, backend, todo: list[int], codes: bool = False):
    """``(i, metrics)`` of the chunks ``todo``, in order (stages 1-2; ``codes``: ``(i, metrics, codes)``).
    The first runs in this process: it fills the segment cache, which local worker processes, forked
    afterwards, inherit instead of each lowering the same segments again."""
    cfg_dict = asdict(cfg)
    _init_worker(cfg_dict)
    fn = coded_cost_chunk if codes else cost_chunk
    if todo:
        yield fn(todo[0])
        yield from backend.map(fn, todo[1:], init=_init_worker, init_args=(cfg_dict,))


def n_chunks(cfg: ScreenConfig, space) -> int:
    """How many chunks the run's candidates make."""
    total = space.size if cfg.all else cfg.n
    return -(-total // cfg.chunk)


# ------------------------------------------------------------------ entry points
def screen(space: str, device: str | Device = "mobile-npu-16", n: int | None = 100_000,
           max_latency_ms: float | None = None, max_params: float | None = None, max_peak_kb: float | None = None,
           max_model_bytes: float | None = None, survivors: int = 200, top: int = 10, seed: int = 0,
           db: str | None = None, *, resume: int | str | None = None, backend=None, quiet: bool = False,
           **options) -> ScreenResult:
    """Screen ``space`` (a name, :func:`zeroshot.list_spaces`) against ``device`` (a name, a device JSON file
    or a device object): ``n`` sampled candidates (or the whole space: ``all=True``) through the five stages
    (module docstring) to a shortlist.

    Constraints: ``max_latency_ms``, ``max_params``, ``max_peak_kb`` (peak activation memory),
    ``max_model_bytes``.  ``survivors``: candidates kept by the cheap score (0: stop after the cheap
    screen, without torch); of those, ``scored`` (an option, default 64; None: all) get the network proxies
    (:func:`scored_survivors`); ``top``: shortlist size.  ``options``: the other :class:`ScreenConfig`
    fields (``space_options``, ``all``, ``chunk``, ``precision``, ``cheap``, ``data``, ``batch_size``,
    ``proxy_scale``, ``scored``, ``baseline``, ``min_score``).

    Against a baseline (by default the space's MobileNetV2 for its task: mbv2; none in nb201 and fbnet):
    ``baseline`` names one of the space's baselines, is an encoding, or a network outside the space (an IR
    :class:`~zeroshot.spaces.ir.Arch`, e.g. of :func:`zeroshot.from_torch`: costed by
    :func:`zeroshot.api.estimate`, its proxies by :func:`zeroshot.api.score`); None: none.  It is scored in
    the survivors' batch, the constraints not given are its own (faster, params and peak activations no
    larger), and the shortlist keeps scores at or above ``min_score`` (``"baseline"``: its score; a number;
    None).  ``summary["baseline"]`` and ``summary["shortlist"]`` hold their rows (:func:`brief_row`),
    ``summary["closest"]`` the best rows when nothing beats it.

    ``db``: a results database to write (and ``resume``: a run id of it, or ``"last"``);
    None screens in memory.  ``backend``: :func:`zeroshot.backends.get_backend` (default: this process).

    >>> r = screen("nb201", n=500, max_params=400_000, survivors=0, top=2)
    >>> r.counts["passed"] < r.counts["sampled"] and bool((r.shortlist["params"] <= 400_000).all())
    True
    """
    known = {f.name for f in fields(ScreenConfig)} - {"space"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"screen() got unexpected keyword argument(s) {', '.join(unknown)}; "
                        f"it takes {', '.join(sorted(known))}")
    if not isinstance(space, str):
        raise ParameterError("space", "a space name (zeroshot.list_spaces())", space)
    if resume is not None and db is None:
        raise ParameterError("db", "the database of the run to resume", fix="pass db= with resume=")
    if isinstance(device, Device):
        device = device.to_dict()               # what the store records and the workers rebuild
    model = _model_baseline(options)
    cfg = ScreenConfig(space=space, device=device, n=n, max_latency_ms=max_latency_ms, max_params=max_params,
                       max_peak_kb=max_peak_kb, max_model_bytes=max_model_bytes, survivors=survivors, top=top,
                       seed=seed, **options)
    return _screen(cfg, db, resume, backend, quiet, model)


def _model_baseline(options: dict):
    """A network outside the space given as ``baseline`` (an IR :class:`~zeroshot.spaces.ir.Arch`, e.g. of
    :func:`zeroshot.from_torch`): returned, its name left in ``options`` as ``"model:NAME"`` (what the run's
    config records); None for a name or an encoding."""
    arch = options.get("baseline")
    if arch is None or isinstance(arch, str):
        return None
    if not isinstance(arch, Arch):
        raise ParameterError("baseline", "a baseline name, an encoding, an IR Arch or None", type(arch).__name__,
                             fix="convert a torch module first: baseline=zs.from_torch(module, (C, H, W))")
    options["baseline"] = f"model:{arch.meta.get('name', 'network')}"
    return arch


def run_screen(cfg: ScreenConfig, db: str = ":memory:", resume: int | str | None = None, backend=None,
               quiet: bool = False) -> dict:
    """Run (or ``resume``: a run id or ``"last"``) the screen ``cfg`` into the results database ``db``;
    returns the summary (stage counts and timings, the shortlist; ``rows``: its rows)."""
    return _screen(cfg, db, resume, backend, quiet).summary


def _screen(cfg: ScreenConfig, db: str | None, resume, backend, quiet: bool, model=None) -> ScreenResult:
    """The flow: validate, open the run, the baseline's cost (the default constraints), stages 1-2, 3, 4
    (the baseline scored with the survivors) and 5, summary.  ``model``: a baseline outside the space (IR)."""
    space = validate(cfg, model)
    if resume is not None:
        _check_resume(resume, db)
    with ResultStore(db or ":memory:", space=cfg.space, space_options=cfg.space_options) as store:
        run_id, cfg = open_run(store, cfg, resume)
        reference = baseline_cost(cfg, space) if model is None else model_cost(cfg, model)
        run = _Run(baseline_limits(cfg, reference), space, store, run_id, backend, quiet)
        timings = {}
        with _timed(timings, "cost"):
            constraints = cost_stage(run)
        check_passed(run, constraints)
        with _timed(timings, "select"):
            best, survived = survivor_stage(run)
        if cfg.survivors:
            with _timed(timings, "proxies"):
                network_stage(run, scored_survivors(cfg, space, best), reference if model is None else None)
                baseline_proxies(reference, model, cfg)
            shortlist, front, constant, closest = shortlist_stage(run, reference)
        else:
            (shortlist, front, closest), constant = cheap_shortlist_stage(run, reference), {}
        summary = finish(run, timings, constraints, survived, shortlist, constant, reference, closest)
        columns = [*store.columns, "score"]
    return ScreenResult(result_table(shortlist, columns), result_table(front, columns), summary["counts"], summary,
                        run_id, db)


#: columns of exact counts, stored as SQLite REALs and given back as integers
COUNT_COLUMNS = ("params", "macs", "peak_activation_bytes", "model_bytes")


def result_table(rows: list[dict], columns: list[str]) -> Table:
    """Candidate rows as a :class:`~zeroshot.table.Table`: exact counts as integers, and ``columns`` even
    when no row came (a shortlist nothing reached still has its columns)."""
    rows = [{**r, **{c: int(r[c]) for c in COUNT_COLUMNS if r.get(c) is not None}} for r in rows]
    return Table.from_rows(rows, columns=None if rows else columns)


# ------------------------------------------------------------------ the flow's steps
@dataclass
class _Run:
    """What the stages of one screen share."""

    cfg: ScreenConfig
    space: object
    store: ResultStore
    run_id: int
    backend: object = None
    quiet: bool = False

    def __post_init__(self):
        if self.backend is None:
            from .backends import LocalBackend
            self.backend = LocalBackend(1)


@contextlib.contextmanager
def _timed(timings: dict, name: str):
    t0 = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - t0


def validate(cfg: ScreenConfig, model=None):
    """Check ``cfg`` (and a ``model`` baseline) before anything runs (ParameterError naming the parameter);
    the space it screens."""
    space = get_space(cfg.space, **cfg.space_options)
    if not cfg.all:
        check_int("n", cfg.n, 1, "a positive number of candidates (an integer: 100_000, not 1e5)")
    for name, least in (("survivors", 0), ("top", 1), ("chunk", 1)):
        check_int(name, getattr(cfg, name), least)
    check_seed(cfg.seed)
    if cfg.scored is not None and cfg.scored < 1:
        raise ParameterError("scored", "an integer >= 1, or None (every one of the best survivors; all on the "
                             "command line)", cfg.scored)
    if not 0 < cfg.proxy_scale <= 1:
        raise ParameterError("proxy_scale", "in (0, 1]", cfg.proxy_scale)
    if model is None:
        baseline_encoding(cfg, space)
    _score_floor(cfg.min_score, None)
    bytes_per_element(cfg.precision)
    Constraints.from_config(cfg)
    cheap_metrics(cfg.cheap)
    _device(cfg.device)
    if cfg.survivors:
        _check_network_inputs(cfg, space)
    return space


def _check_network_inputs(cfg: ScreenConfig, space) -> None:
    """Stage 4's batch and data; warns once when the batch is too small for swap to rank finely."""
    from .proxies.passes import SWAP_SAMPLES
    check_batch_size(cfg.batch_size)
    if cfg.batch_size < SWAP_SAMPLES:
        warnings.warn(f"batch_size={cfg.batch_size}: swap reads {SWAP_SAMPLES} samples, so it counts patterns "
                      f"over {cfg.batch_size} (at most 2^{cfg.batch_size}) and ranks coarsely", UserWarning,
                      stacklevel=5)
    if cfg.data:
        from .batches import load_data
        probe = space.build_ir(space.sample_codes(1, np.random.default_rng(0))[0])
        load_data(cfg.data, classes=probe.tensor_shape(probe.outputs[0])[0])


def baseline_encoding(cfg: ScreenConfig, space) -> str | None:
    """The encoding of the screen's baseline: ``cfg.baseline`` names one of the space's baselines (for the
    space's task) or is an encoding of it; ``"default"``: :data:`DEFAULT_BASELINE` where the space has it
    (mbv2; nb201 and fbnet have none: no baseline); None or ``"none"``: no baseline.

    >>> from zeroshot.spaces import get_space
    >>> baseline_encoding(ScreenConfig("mbv2"), get_space("mbv2"))[:10]
    'r224 s32 |'
    >>> baseline_encoding(ScreenConfig("nb201"), get_space("nb201")) is None
    True
    """
    from zeroshot.spaces.baselines import get_baseline, list_baselines
    names, task = list_baselines(cfg.space), getattr(space, "task", "classify")
    if cfg.baseline in (None, "none") or (cfg.baseline == "default" and DEFAULT_BASELINE not in names):
        return None
    name = DEFAULT_BASELINE if cfg.baseline == "default" else cfg.baseline
    if name in names:
        return get_baseline(cfg.space, name, task)
    try:
        return space.format(space.parse(name))
    except EncodingError as e:
        shown = name if len(name) <= 40 else name[:37] + "..."           # the encoding error quotes it whole
        raise ParameterError("baseline", f"a baseline of {cfg.space} ({', '.join(names) or 'it has none'}) or "
                                         f"an encoding of the space", shown, str(e)) from None


def _score_floor(min_score, reference: dict | None) -> float:
    """The least score a shortlisted network has: the baseline's (``"baseline"``; none without a baseline),
    a number, or none (None / ``"none"``)."""
    if min_score in (None, "none") or (min_score == "baseline" and reference is None):
        return -np.inf
    if min_score == "baseline":
        return reference["score"]
    if isinstance(min_score, bool) or not isinstance(min_score, Real) or np.isnan(min_score):
        raise ParameterError("min_score", "'baseline', a number or None", min_score)
    return float(min_score)


def open_run(store: ResultStore, cfg: ScreenConfig, resume: int | str | None) -> tuple[int, ScreenConfig]:
    """A new run of ``cfg``, or the run to ``resume`` (an id or ``"last"``) with its stored config."""
    if resume is None:
        return store.new_run(asdict(cfg), kind="screen"), cfg
    run_id = store.last_run("screen") if resume == "last" else int(resume)
    if store.run_kind(run_id) != "screen":
        raise ParameterError("resume", "the id of a screen run", run_id,
                             f"run {run_id} of {store.path} is a {store.run_kind(run_id)} run")
    stored = store.run_config(run_id)
    if stored != asdict(cfg):
        # runs from before proxy_scale: full size; from before scored: every one of the best survivors
        cfg = ScreenConfig(**{"proxy_scale": 1.0, "scored": None, **stored})
    return run_id, cfg


def _check_resume(resume, db: str | None) -> None:
    """A run to resume is named by its id or ``"last"``, in a database that exists (none is created)."""
    if resume != "last" and (isinstance(resume, bool) or not isinstance(resume, (int, np.integer))):
        raise ParameterError("resume", "a run id or 'last'", resume)
    if db not in (None, ":memory:") and not os.path.exists(db):
        raise StoreError(f"{db} has no screen run: the file does not exist (start a new screen instead)")


def baseline_cost(cfg: ScreenConfig, space) -> dict | None:
    """The baseline's row (``arch`` and its stage-2 metrics, the cheap score among them), costed by the
    estimator the candidates go through; None without a baseline."""
    arch = baseline_encoding(cfg, space)
    if arch is None:
        return None
    _init_worker(asdict(cfg))
    metrics = _WORKER["estimator"].evaluate(space.parse(arch)[None])
    return {"arch": arch, **{name: float(v[0]) for name, v in metrics.items()}}


def model_cost(cfg: ScreenConfig, model) -> dict:
    """The row of a baseline outside the space (IR): its cost through :func:`zeroshot.api.estimate` on the
    screen's device and precision, and its cheap score on the whole network (the candidates' figures come
    from the same lowering, device model and proxy, combined over their segments to the same values)."""
    from .api import estimate
    row = estimate([model], device=_device(cfg.device), precision=cfg.precision).row(0)
    cheap = float(whole_values(cheap_metrics(cfg.cheap)["cheap"], to_table([model]))[0])
    return dict(row, arch=cfg.baseline.removeprefix("model:"), cheap=cheap)


def baseline_limits(cfg: ScreenConfig, reference: dict | None) -> ScreenConfig:
    """``cfg`` with the constraints not given taken from the baseline: faster than it (latency strictly
    below), params and peak activation memory no larger."""
    if reference is None:
        return cfg
    given = {"max_latency_ms": np.nextafter(reference["latency_ms"], 0.0), "max_params": reference["params"],
             "max_peak_kb": reference["peak_activation_bytes"] / 1024}
    return replace(cfg, **{k: float(v) for k, v in given.items() if getattr(cfg, k) is None})


def cost_stage(run: _Run) -> Constraints:
    """Stages 1-2: cost every chunk not in the store yet and store it as a block in one transaction, its
    candidates ``passed`` when within the constraints (a duplicate keeps its first writing); the
    constraints' counts."""
    cfg, space, store = run.cfg, run.space, run.store
    constraints = Constraints.from_config(cfg)
    total = n_chunks(cfg, space)
    done = store.done_chunks(run.run_id, "passed")
    todo = [i for i in range(total) if i not in done]
    bar = progress(total=total, initial=len(done), desc="cost", unit="chunk", disable=run.quiet)
    for i, metrics, codes in cost_chunks(cfg, run.backend, todo, codes=True):
        store.write_codes(run.run_id, i, codes, metrics, {"passed": constraints.mask(metrics)}, stage_marker="passed")
        bar.update(1)
    bar.close()
    return constraints


def check_passed(run: _Run, constraints: Constraints) -> None:
    """Refuse a screen where no candidate passed: the tightest constraint and what it removed."""
    if run.store.count(run.run_id, "passed") == 0:
        raise constraints.infeasible() or InputError("no candidate passes the constraints")


def survivor_stage(run: _Run) -> tuple[list[str], list[str]]:
    """Stage 3, streamed from the store (memory does not grow with the number of candidates): the best
    ``survivors`` (or ``top``) by the cheap score, and the survivors (those plus the front of cheap score
    vs latency, marked ``cheap_front``)."""
    store, run_id = run.store, run.run_id
    best = [r["arch"] for r in store.top(run_id, "cheap", int(run.cfg.survivors or run.cfg.top),
                                         min_stage="passed", columns=["arch"])]
    front = set(store.front(run_id, "cheap", "latency_ms", min_stage="passed"))
    survivors = sorted(set(best) | front)
    store.write_chunk(run_id, -1, [(a, "survived", {"cheap_front": float(a in front)}) for a in survivors],
                      stage_marker="survived")
    return best, survivors


def scored_survivors(cfg: ScreenConfig, space, best: list[str]) -> list[str]:
    """The survivors stage 4 scores: of ``best`` (by the cheap score, best first), the ``cfg.scored`` with the
    largest input side (``space.resolution_column``), ties in ``best``'s order; the first ``cfg.scored``
    in a space whose codes hold no resolution; all of them when ``cfg.scored`` is None.

    >>> from zeroshot.spaces import get_space
    >>> best = ["r160 s16 | i3e1c16 | i3e6c24 | i3e6c32 | i3e6c64 | i3e6c96 | i3e6c160 | i3e6c320 | h1280",
    ...         "r224 s16 | i3e1c16 | i3e6c24 | i3e6c32 | i3e6c64 | i3e6c96 | i3e6c160 | i3e6c320 | h1280",
    ...         "r192 s16 | i3e1c16 | i3e6c24 | i3e6c32 | i3e6c64 | i3e6c96 | i3e6c160 | i3e6c320 | h1280"]
    >>> [a[:4] for a in scored_survivors(ScreenConfig("mbv2", scored=2), get_space("mbv2"), best)]
    ['r224', 'r192']
    """
    if cfg.scored is None or cfg.scored >= len(best):
        return best
    column = getattr(space, "resolution_column", None)
    if column is None:
        return best[:cfg.scored]
    side = [int(space.parse(a)[column]) for a in best]
    order = sorted(range(len(best)), key=lambda i: -side[i])          # stable: the cheap score's order in a side
    return [best[i] for i in order[:cfg.scored]]


def network_stage(run: _Run, best: list[str], reference: dict | None = None) -> None:
    """Stage 4: the default score's proxies of the best survivors, in batches of 4 (each one transaction),
    and of the ``reference`` row's encoding (the baseline, added to its row) as the first task beside them."""
    store, run_id = run.store, run.run_id
    names = sorted(best)
    scored = store.done_chunks(run_id, "scored")
    per = 4
    batches = [(j, names[s:s + per]) for j, s in enumerate(range(0, len(names), per)) if j not in scored]
    first = [[reference["arch"]]] if reference is not None else []
    bar = progress(total=len(names), initial=len(names) - sum(len(b) for _, b in batches),
                   desc="proxies", unit="arch", disable=run.quiet)
    # one thread per task: local workers share the cores (threaded BLAS on a loaded machine mostly spins)
    results = run.backend.map(network_chunk, first + [b for _, b in batches], init=_init_worker,
                              init_args=(asdict(run.cfg),), resources={"num_cpus": 1})
    if first:
        reference.update(next(results)[0])
    for (j, batch), values in zip(batches, results):
        store.write_chunk(run_id, j, [(a, "scored", m) for a, m in zip(batch, values)], stage_marker="scored")
        bar.update(len(batch))
    bar.close()


def baseline_proxies(reference: dict | None, model, cfg: ScreenConfig) -> None:
    """Stage 4 of a baseline ``model`` outside the space (an encoding's is computed beside the survivors',
    :func:`network_stage`): the default score's proxies through :func:`zeroshot.api.score` (the same
    seeded input and data, at its own input size: no ``proxy_scale``), added to its row."""
    if reference is None or model is None:
        return
    from .api import score
    from .scoring import DEFAULT_PROXIES
    values = score([model], proxies=DEFAULT_PROXIES, data=cfg.data, seed=cfg.seed, batch_size=cfg.batch_size)
    reference.update({name: float(values[name][0]) for name in DEFAULT_PROXIES})


def shortlist_stage(run: _Run, reference: dict | None) -> tuple[list[dict], list[dict], dict, list[dict]]:
    """Stage 5: the default score (rank aggregate of its proxies) over the scored candidates and the baseline
    in one batch (the baseline's becomes its ``score``); the top rows at or above the score floor
    (``min_score``), the front of score vs latency (both marked in the store), the proxies that took one
    value over every scored candidate (name -> value: they do not rank, e.g. swap at its 2^16 cap on large
    networks), and the closest rows when none reaches the floor."""
    from .scoring import DEFAULT_PROXIES, rank_aggregate
    rows = run.store.candidates(run.run_id, "scored")
    values = {n: np.array([r[n] for r in rows], dtype=np.float64) for n in DEFAULT_PROXIES}
    constant = {n: float(v[0]) for n, v in values.items() if len(v) > 1 and (v == v[0]).all()}
    if reference is not None:
        values = {n: np.append(v, reference[n]) for n, v in values.items()}
    score = rank_aggregate(values)
    if reference is not None:
        reference["score"], score = float(score[-1]), score[:-1]
    ranked = np.lexsort((np.array([r["arch"] for r in rows]), -score))
    scored = [dict(rows[i], score=float(score[i])) for i in ranked]
    shortlist, closest = _pick(scored, run.cfg, reference)
    index = {r["arch"]: i for i, r in enumerate(rows)}
    top = np.array([index[r["arch"]] for r in shortlist], dtype=np.int64)
    front = pareto_front(score, np.array([r["latency_ms"] for r in rows]))
    top_set, chosen = set(top.tolist()), set(np.union1d(top, front).tolist())
    run.store.write_chunk(run.run_id, -2, [
        (rows[i]["arch"], "shortlisted", {"score": score[i], "top": float(i in top_set)})
        for i in range(len(rows)) if i in chosen] + [
        (rows[i]["arch"], "scored", {"score": score[i]}) for i in range(len(rows)) if i not in chosen],
        stage_marker="shortlisted")
    return shortlist, [dict(rows[i], score=float(score[i])) for i in front], constant, closest


def _pick(ranked: list[dict], cfg: ScreenConfig, reference: dict | None) -> tuple[list[dict], list[dict]]:
    """The shortlist (the first ``top`` of ``ranked``, best first, with a score at or above the floor, the
    baseline itself left out) and, when it is empty, the closest: the ``top`` best."""
    floor = _score_floor(cfg.min_score, reference)
    arch = reference["arch"] if reference else None
    shortlist = [r for r in ranked if r["score"] >= floor and r["arch"] != arch][:cfg.top]
    return shortlist, [] if shortlist else [r for r in ranked if r["arch"] != arch][:cfg.top]


def cheap_shortlist_stage(run: _Run, reference: dict | None) -> tuple[list[dict], list[dict], list[dict]]:
    """Stage 5 without network proxies (``survivors=0``): the top survivors by the cheap score at or above
    the floor (the baseline's cheap score by default), the survivors on the front of cheap score vs latency,
    by latency (``score`` is the cheap score), and the closest when none reaches the floor."""
    store, run_id = run.store, run.run_id
    if reference is not None:
        reference["score"] = reference["cheap"]
    k = run.cfg.top if reference is None and run.cfg.min_score in ("baseline", None, "none") else store.count(
        run_id, "survived")
    ranked = [dict(r, score=r["cheap"]) for r in store.top(run_id, "cheap", k, min_stage="survived")]
    shortlist, closest = _pick(ranked, run.cfg, reference)
    store.write_chunk(run_id, -2, [(r["arch"], "shortlisted", {"top": 1.0}) for r in shortlist],
                      stage_marker="shortlisted")
    survivors = store.candidates(run_id, "survived")
    front = sorted((r for r in survivors if r["cheap_front"]), key=lambda r: (r["latency_ms"], -r["cheap"]))
    return shortlist, [dict(r, score=r["cheap"]) for r in front], closest


def finish(run: _Run, timings: dict, constraints: Constraints, survived: list[str], shortlist: list[dict],
           constant: dict, reference: dict | None = None, closest: list[dict] = ()) -> dict:
    """Record the run's summary in the store; returns it, with the shortlist's ``rows``.  ``shortlist`` (and
    ``closest``, when nothing reaches the score floor) hold :func:`brief_row` s, each with its change
    against the ``baseline`` row (None without one)."""
    store, run_id = run.store, run.run_id
    counts = {"sampled": store.count(run_id, "sampled"), "passed": store.count(run_id, "passed"),
              "survived": len(survived)}
    if run.cfg.survivors:
        counts["scored"] = store.count(run_id, "scored")
    counts["shortlisted"] = len(shortlist)
    summary = {"run_id": run_id, "counts": counts, "timings_s": timings, "removed_by": dict(constraints.removed),
               "baseline": reference and brief_row(reference), "constraints": constraints.limits,
               "min_score": _score_floor(run.cfg.min_score, reference),
               "shortlist": [brief_row(r, reference) for r in shortlist],
               "closest": [brief_row(r, reference) for r in closest], "constant_proxies": constant}
    store.finish_run(run_id, summary)
    summary["rows"] = shortlist
    return summary


def brief_row(row: dict, reference: dict | None = None) -> dict:
    """What the summary shows of a network: ``arch``, ``score``, ``latency_ms``, ``params``, ``peak_kb``;
    against a ``reference`` row, the change in percent (``latency_pct``, ``params_pct``, ``peak_pct``) and
    ``score_vs_baseline`` (the difference).

    >>> base = {"arch": "b", "score": -1.0, "latency_ms": 2.0, "params": 100, "peak_activation_bytes": 2048}
    >>> brief_row(dict(base, arch="a", score=-0.5, latency_ms=1.5), base)["latency_pct"]
    -25.0
    """
    out = {"arch": row["arch"], "score": float(row["score"]), "latency_ms": float(row["latency_ms"]),
           "params": int(row["params"]), "peak_kb": float(row["peak_activation_bytes"]) / 1024}
    if reference is not None:
        base = brief_row(reference)
        out.update({f"{k.split('_')[0]}_pct": 100 * (out[k] / base[k] - 1)
                    for k in ("latency_ms", "params", "peak_kb")}, score_vs_baseline=out["score"] - base["score"])
    return out
