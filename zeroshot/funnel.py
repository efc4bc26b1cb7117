"""The screening funnel: millions of candidates in, a shortlist worth training out.

Stages, each cheaper per candidate than the next:

1. sample (or enumerate) candidates in seeded chunks and de-duplicate;
2. hardware cost (exact counts, device latency, model bytes) and topology-only proxies for whole chunks
   (Cython, segment cache); drop what breaks the constraints;
3. keep the best ``survivors`` by the cheap score plus the Pareto front of (cheap score, latency);
4. network proxies (torch, shared passes) on the survivors, at ``proxy_scale`` times their input side in
   spaces whose codes carry the input resolution (mbv2 by default 0.75: 120-168 px instead of 160-224 px,
   at 0.56 of the cost; on 40 survivors of a separate screen the default score's ranking agrees with full
   resolution at Kendall 0.887 / Spearman 0.979, where two seeds at full resolution agree at 0.951 / 0.993;
   ``python benchmarks/funnel_speed.py --scale-check``, ``benchmarks/results/funnel_proxy_scale.md``);
5. shortlist the top ``top`` by the default score plus the Pareto front of (score, latency).

Chunk ``i`` is a pure function of (config, i), results are consumed in chunk order, and each chunk is
written to the store in one transaction: results are identical whatever the backend and worker count, and a
killed run resumes losing at most the chunk in flight.

Example
-------
>>> cfg = ScreenConfig(space="nb201", n=2000, survivors=0, top=5, device="mobile-npu-16")
>>> result = run_screen(cfg, "screen.db")     # doctest: +SKIP
"""
from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from zeroshot.estimator.devices import load_device
from zeroshot.estimator.estimate import Estimator

from .allocator import keep_freed_memory
from .errors import UserError
from .progress import progress
from .store import ResultStore

SAMPLED, PASSED, SURVIVED, SCORED, SHORTLISTED = 1, 2, 3, 4, 5
STAGE_NAMES = {SAMPLED: "sampled", PASSED: "passed constraints", SURVIVED: "survived cheap screen",
               SCORED: "network proxies", SHORTLISTED: "shortlisted"}


@dataclass
class ScreenConfig:
    space: str
    space_options: dict = field(default_factory=dict)
    n: int | None = 100_000
    all: bool = False
    device: str = "mobile-npu-16"
    max_latency_ms: float | None = None
    max_params: float | None = None
    max_peak_kb: float | None = None
    max_model_bytes: float | None = None
    survivors: int = 200
    top: int = 10
    seed: int = 0
    chunk: int = 20_000
    precision: str = "fp32"
    cheap: str = "entropy"
    data: str | None = None
    batch_size: int = 16            # swap reads 16 samples, meco one input: a larger batch only costs time
    proxy_scale: float = 0.75       # stage 4 input side, relative to each candidate's own (see the docstring)

    def constraints(self) -> dict[str, float]:
        """Active constraints as metric name -> maximum."""
        c = {"latency_ms": self.max_latency_ms, "params": self.max_params,
             "peak_activation_bytes": None if self.max_peak_kb is None else self.max_peak_kb * 1024,
             "model_bytes": self.max_model_bytes}
        return {k: float(v) for k, v in c.items() if v is not None}


# ------------------------------------------------------------------ worker side (pure functions)
_WORKER: dict = {}


def _init_worker(cfg_dict: dict) -> None:
    key = repr(sorted(cfg_dict.items()))
    if _WORKER.get("key") == key:
        return
    from zeroshot.spaces import get_space
    keep_freed_memory()             # spawned workers do not inherit the command line's setting
    cfg = ScreenConfig(**cfg_dict)
    space = get_space(cfg.space, **cfg.space_options)
    estimator = Estimator(space, load_device(cfg.device), cfg.precision, extra=cheap_metrics(cfg.cheap))
    _WORKER.update(key=key, cfg=cfg, space=space, estimator=estimator)


def cheap_metrics(name: str) -> dict:
    """The cheap (topology-only) score as a segment metric named ``cheap``."""
    from .proxies import get_proxy
    proxy = get_proxy(name)
    if proxy.kind != "topology":
        raise UserError(f"the cheap score must be a topology proxy; {name!r} needs a network")
    reduce = getattr(proxy, "segment_reduce", None) or "sum"
    sign = 1.0 if proxy.higher_is_better else -1.0
    return {"cheap": (lambda table: sign * np.asarray(proxy.fn(table), dtype=np.float64), reduce)}


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
    """Stages 1-2 of chunk ``i`` (worker side): the metrics of its candidates.  Not the codes: the caller
    regenerates them with :func:`chunk_codes` (cheaper than sending them between processes)."""
    return i, _WORKER["estimator"].evaluate(chunk_codes(_WORKER["cfg"], _WORKER["space"], i))


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
    resolution times ``proxy_scale`` (the ``--data`` images resized, or seeded synthetic input of that
    shape)."""
    import torch

    from .batches import load_data
    from .score import DEFAULT_PROXIES, compute_proxies
    cfg, space = _WORKER["cfg"], _WORKER["space"]
    codes = proxy_codes(space, np.array([space.parse(a) for a in archs], dtype=np.int64), cfg.proxy_scale)
    if cfg.data and "data" not in _WORKER:
        _WORKER["data"] = load_data(cfg.data)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)        # as in the workers: conv sums differ in the last bits with the threads
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "swap reads", UserWarning)      # said once by run_screen
            values = compute_proxies(space, codes, DEFAULT_PROXIES, _WORKER.get("data"), cfg.seed,
                                     cfg.batch_size)
    finally:
        torch.set_num_threads(threads)
    return [{name: float(v[i]) for name, v in values.items()} for i in range(len(archs))]


# ------------------------------------------------------------------ coordinator
def cost_chunks(cfg: ScreenConfig, backend, todo: list[int]):
    """``(i, metrics)`` of the chunks ``todo``, in order (stages 1-2).  The first runs in this process:
    it fills the segment cache, which local worker processes, forked afterwards, inherit instead of each
    lowering the same segments again."""
    cfg_dict = asdict(cfg)
    _init_worker(cfg_dict)
    if todo:
        yield cost_chunk(todo[0])
        yield from backend.map(cost_chunk, todo[1:], init=_init_worker, init_args=(cfg_dict,))


def n_chunks(cfg: ScreenConfig, space) -> int:
    total = space.size if cfg.all else cfg.n
    return -(-total // cfg.chunk)


def pareto_front(score: np.ndarray, latency: np.ndarray) -> np.ndarray:
    """Indices of points not dominated in (higher score, lower latency), by increasing latency: those
    scoring strictly more than every point at least as fast (NaN scores never)."""
    order = np.lexsort((-score, latency))
    s = np.asarray(score, dtype=np.float64)[order]
    best_before = np.concatenate([[-np.inf], np.maximum.accumulate(np.where(np.isnan(s), -np.inf, s))[:-1]])
    return order[s > best_before].astype(np.int64)


def run_screen(cfg: ScreenConfig, db_path: str, resume: int | None = None, backend=None,
               quiet: bool = False) -> dict:
    """Run (or resume) a screen; returns the summary: stage counts and timings, the shortlist."""
    from zeroshot.spaces import get_space

    from .backends import LocalBackend
    space = get_space(cfg.space, **cfg.space_options)
    if not cfg.all and (cfg.n is None or cfg.n < 1):
        raise UserError(f"-n must be a positive number of candidates, got {cfg.n}")
    if cfg.survivors < 0 or cfg.top < 1:
        raise UserError("--survivors must be >= 0 and --top >= 1")
    if not 0 < cfg.proxy_scale <= 1:
        raise UserError(f"--proxy-scale must be in (0, 1], got {cfg.proxy_scale}")
    if cfg.survivors and cfg.batch_size < 2:
        raise UserError(f"--batch-size must be at least 2 (batch statistics), got {cfg.batch_size}")
    from .proxies.passes import SWAP_SAMPLES      # (imports torch: not at module level)
    if cfg.survivors and cfg.batch_size < SWAP_SAMPLES:
        warnings.warn(f"--batch-size {cfg.batch_size}: swap reads {SWAP_SAMPLES} samples, so it counts patterns over "
                      f"{cfg.batch_size} (at most 2^{cfg.batch_size}) and ranks coarsely", UserWarning, stacklevel=2)
    load_device(cfg.device)                       # fail early on a bad device or data file
    if cfg.data:
        from .batches import load_data
        probe = space.build_ir(space.sample_codes(1, np.random.default_rng(0))[0])
        load_data(cfg.data, classes=probe.tensor_shape(probe.outputs[0])[0])
    store = ResultStore(db_path, space=cfg.space, space_options=cfg.space_options)
    if resume is None:
        run_id = store.new_run(asdict(cfg))
    else:
        run_id = resume
        stored = store.run_config(run_id)
        if stored != asdict(cfg):
            cfg = ScreenConfig(**{"proxy_scale": 1.0, **stored})     # runs from before proxy_scale: full size
    backend = backend or LocalBackend(1)
    cfg_dict = asdict(cfg)
    _init_worker(cfg_dict)
    timings, counts = {}, {}

    # stages 1-2
    t0 = time.perf_counter()
    total_chunks = n_chunks(cfg, space)
    done = store.done_chunks(run_id, PASSED)
    constraints = cfg.constraints()
    removed = {k: 0 for k in constraints}
    todo = [i for i in range(total_chunks) if i not in done]
    new_rows = 0
    bar = progress(total=total_chunks, initial=len(done), desc="cost", unit="chunk", disable=quiet)
    for i, metrics in cost_chunks(cfg, backend, todo):
        codes = chunk_codes(cfg, space, i)
        ok = np.ones(len(codes), bool)
        for name, limit in constraints.items():
            fails = metrics[name] > limit
            removed[name] += int(fails.sum())
            ok &= ~fails
        rows = [(space.format(c), PASSED if passed else SAMPLED, {k: v[j] for k, v in metrics.items()})
                for j, (c, passed) in enumerate(zip(codes, ok))]
        # duplicates (within the chunk or of an earlier chunk) keep their first row
        new_rows += store.write_chunk(run_id, i, rows, stage_marker=PASSED, update=False)
        bar.update(1)
    bar.close()
    timings["cost"] = time.perf_counter() - t0
    counts["sampled"] = store.count(run_id, SAMPLED)
    counts["passed"] = store.count(run_id, PASSED)
    if counts["passed"] == 0:
        tight = max(removed, key=removed.get) if removed else None
        msg = "no candidate passes the constraints"
        if tight:
            msg += (f"; the tightest is {tight} <= {constraints[tight]:g}, which removed {removed[tight]:,} of "
                    f"{sum(len(chunk_codes(cfg, space, i)) for i in todo):,} sampled candidates: relax it")
        raise UserError(msg)

    # stage 3: streamed from the store (memory does not grow with the number of candidates)
    t0 = time.perf_counter()
    best = [a for a, in store.stream(run_id, "arch", "stage >= ?", (PASSED,), "cheap DESC, arch LIMIT "
                                     f"{int(cfg.survivors or cfg.top)}")]
    front, top_score = [], -np.inf
    for a, cheap, _ in store.stream(run_id, "arch, cheap, latency_ms", "stage >= ?", (PASSED,),
                                    "latency_ms ASC, cheap DESC, arch"):
        if cheap > top_score:
            front.append(a)
            top_score = cheap
    front_set = set(front)
    survivors = sorted(set(best) | front_set)
    store.write_chunk(run_id, -1, [(a, SURVIVED, {"cheap_front": float(a in front_set)}) for a in survivors],
                      stage_marker=SURVIVED)
    timings["select"] = time.perf_counter() - t0
    counts["survived"] = len(survivors)

    # stage 4-5
    if cfg.survivors:
        t0 = time.perf_counter()
        names = sorted(best)
        scored = store.done_chunks(run_id, SCORED)
        per = 4
        batches = [(j, names[s:s + per]) for j, s in enumerate(range(0, len(names), per)) if j not in scored]
        bar = progress(total=len(names), initial=len(names) - sum(len(b) for _, b in batches),
                       desc="proxies", unit="arch", disable=quiet)
        # one thread per task: local workers share the cores (threaded BLAS on a loaded machine mostly spins)
        for (j, batch), results in zip(batches, backend.map(network_chunk, [b for _, b in batches],
                                                            init=_init_worker, init_args=(cfg_dict,),
                                                            resources={"num_cpus": 1})):
            store.write_chunk(run_id, j, [(a, SCORED, m) for a, m in zip(batch, results)], stage_marker=SCORED)
            bar.update(len(batch))
        bar.close()
        timings["proxies"] = time.perf_counter() - t0
        counts["scored"] = store.count(run_id, SCORED)
        shortlist, constant = _shortlist(store, run_id, cfg)
    else:
        constant = {}
        shortlist = [dict(r, score=r["cheap"]) for r in
                     store.candidates(run_id, "stage >= ?", (SURVIVED,), order="cheap DESC, arch")[: cfg.top]]
        store.write_chunk(run_id, -2, [(r["arch"], SHORTLISTED, {"top": 1.0}) for r in shortlist],
                          stage_marker=SHORTLISTED)
    counts["shortlisted"] = len(shortlist)
    summary = {"run_id": run_id, "counts": counts, "timings_s": timings, "removed_by": removed,
               "shortlist": [r["arch"] for r in shortlist], "constant_proxies": constant}
    store.finish_run(run_id, summary)
    store.close()
    summary["rows"] = shortlist
    return summary


def _shortlist(store: ResultStore, run_id: int, cfg: ScreenConfig) -> tuple[list[dict], dict]:
    """The top rows by the default score (and the score / latency front, marked in the store), and the
    default score's proxies that took one value over every scored candidate (name -> value: they do
    not rank, e.g. swap at its 2^16 cap on large networks)."""
    from .score import DEFAULT_PROXIES, rank_aggregate
    rows = store.candidates(run_id, "stage >= ?", (SCORED,), order="arch")
    values = {n: np.array([r[n] for r in rows], dtype=np.float64) for n in DEFAULT_PROXIES}
    constant = {n: float(v[0]) for n, v in values.items() if len(v) > 1 and (v == v[0]).all()}
    score = rank_aggregate(values)
    lat = np.array([r["latency_ms"] for r in rows])
    top = np.lexsort((np.array([r["arch"] for r in rows]), -score))[: cfg.top]
    front = pareto_front(score, lat)
    chosen = np.union1d(top, front)
    store.write_chunk(run_id, -2, [(rows[i]["arch"], SHORTLISTED, {"score": score[i],
                                    "top": float(i in set(top.tolist()))}) for i in range(len(rows))
                                   if i in set(chosen.tolist())] +
                      [(rows[i]["arch"], SCORED, {"score": score[i]}) for i in range(len(rows))
                       if i not in set(chosen.tolist())], stage_marker=SHORTLISTED)
    return [dict(rows[i], score=float(score[i])) for i in top], constant
