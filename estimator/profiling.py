"""Profiling this machine into a ``measured`` device: the measuring session and its stages.

:func:`profile` runs nn-Meter's recipe (:mod:`zeroshot.estimator.measured_device`) as stages sharing one
:class:`Session` (torch device, thread count, clock, the executor's call overhead and the time spent):

1. the calibration models (:class:`CalibrationModels`) are measured end to end, and again between and
   after the stages below, so that they see the same mix of machine conditions as the kernels;
2. :func:`measure_passes`: the kernels of random architectures of each space (one of each type first), up
   to ``max_passes`` passes within 65 % of the budget (a kernel's latency is its median over passes);
3. :func:`refine`: regressors per kernel type (:func:`fit_all`), then rounds measuring channel variations
   of the kernels they get wrong, up to 90 % of the budget;
4. :func:`fit_corrections`: the per-model corrections (one per space, one pooled) from the calibration
   models, and how well they fit (:func:`profile_info`).

Example
-------
>>> from zeroshot.spaces import get_space
>>> from zeroshot.spaces.ir import to_table
>>> space = get_space("nb201", channels=4, cells=1, resolution=8)
>>> dev = profile([space], budget_s=3, archs_per_space=4, calibration_archs=3, refine_rounds=1)
>>> float(dev.latency_ms(to_table([space.to_ir(space.sample(1)[0])]))[0]) > 0
True
>>> sorted(dev.corrections) == ["*", "nb201"] and dev.info["calibration_occasions"] >= 2
True
"""
from __future__ import annotations

import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from zeroshot.checks import check_seed
from zeroshot.spaces.ir import to_table

from .counts import table_counts
from .kernel_table import DEFAULT_FUSION, KERNEL_TYPES, decompose
from .measured_device import (CORRECTION, FEATURES, PER_UNIT, POOLED, MeasuredDevice, feature_matrix, fit_regressor,
                              model_terms)
from .sampling import KernelPool, neighbours, row_key
from .speed_check import reference_models

# torch is imported where used (by the measuring stages).

__all__ = ["CalibrationModels", "Samples", "Session", "calibration_archs_of", "fit_all", "fit_correction",
           "fit_corrections", "measure_passes", "profile", "profile_info", "refine"]

KERNEL_BATCH = 32           # kernels measured per call of the timer (and between budget checks)


# ---------------------------------------------------------------------- what is measured
class Samples:
    """Measured kernel configurations: per configuration the median latency of each measuring pass."""

    def __init__(self):
        self.rows: dict[tuple, dict] = {}
        self.passes: dict[tuple, list] = {}
        self.noise: dict[tuple, list] = {}

    def add(self, rows, timings):
        for r, t in zip(rows, timings):
            key = row_key(r)
            self.rows[key] = r
            self.passes.setdefault(key, []).append(max(t.median_ms, 1e-5))
            self.noise.setdefault(key, []).append(t.noise)

    def __len__(self) -> int:
        return len(self.rows)

    def table(self):
        """Keys, feature columns, kernel types and latency (median over passes) as arrays."""
        keys = list(self.rows)
        cols = {f: np.array([self.rows[k][f] for k in keys]) for f in FEATURES + ("type",)}
        ms = np.array([np.median(self.passes[k]) for k in keys])
        return keys, cols, ms


def fit_all(samples: Samples, seed: int = 0) -> tuple[dict, np.ndarray]:
    """Regressors per kernel type and each configuration's out-of-bag relative error (NaN where none)."""
    keys, cols, ms = samples.table()
    regs, errors = {}, np.full(len(keys), np.nan)
    for t in np.unique(cols["type"]):
        idx = np.flatnonzero(cols["type"] == t)
        reg = regs[KERNEL_TYPES[t]] = fit_regressor(feature_matrix(cols, idx), ms[idx], seed)
        if getattr(reg, "oob_prediction_", None) is not None:
            errors[idx] = np.abs(np.exp(reg.oob_prediction_) - ms[idx]) / ms[idx]
    return regs, errors


def fit_correction(raw_sum_ms: np.ndarray, terms: np.ndarray, measured_ms: np.ndarray,
                   fitted: Sequence[str] = PER_UNIT) -> dict:
    """Non-negative :data:`~zeroshot.estimator.measured_device.CORRECTION` coefficients minimising squared
    relative error, from each model's raw kernel sum and :func:`~zeroshot.estimator.measured_device.model_terms`;
    the per-unit terms not in ``fitted`` are held at 0 (an earlier or simpler form of the correction).

    >>> raw = np.array([2.0, 4.0, 6.0, 3.0, 5.0])
    >>> terms = np.array([[1.0, 10, 0.5], [3.0, 30, 0.2], [2.0, 20, 0.9], [5.0, 40, 0.1], [4.0, 25, 0.7]])
    >>> c = fit_correction(raw, terms, 1.1 * raw + 0.01 * terms[:, 1] + 0.3 * terms[:, 2] + 0.5)
    >>> [round(c[k], 3) for k in ("scale", "ms_per_mb", "ms_per_kernel", "ms_per_weight_mb", "intercept_ms")]
    [1.1, 0.0, 0.01, 0.3, 0.5]
    """
    from scipy.optimize import nnls

    terms = np.asarray(terms) * np.array([k in fitted for k in PER_UNIT])
    a = np.column_stack([raw_sum_ms, terms, np.ones_like(raw_sum_ms)]) / measured_ms[:, None]
    coef, _ = nnls(a, np.ones_like(measured_ms))
    if coef[0] == 0:      # degenerate calibration (too few or too noisy models): plain sum
        coef = np.eye(len(CORRECTION))[0]
    return dict(zip(CORRECTION, map(float, coef)))


def calibration_archs_of(space, n: int, seed: int = 0) -> list[str]:
    """The ``n`` calibration architectures of ``space`` that :func:`profile` measures with ``seed``."""
    return space.sample(min(n, space.size), seed=seed + 1)



@dataclass
class Session:
    """The measuring settings of one profile, and the time spent since it began."""

    threads: int | None
    device: str
    clock: str
    overhead_ms: float
    seed: int
    log: Callable[[str], None]
    start: float = field(default_factory=time.perf_counter)
    runtime: str = "torch"

    def spent(self) -> float:
        """Seconds since the session began."""
        return time.perf_counter() - self.start

    def measure(self, samples: Samples, rows: list, until_s: float) -> bool:
        """Measure kernel ``rows`` into ``samples`` in batches until ``until_s`` seconds have been spent
        (once something is measured); False when the budget cut it short."""
        from .timing import measure_kernels

        for i in range(0, len(rows), KERNEL_BATCH):
            if self.spent() > until_s and len(samples):
                return False
            batch = rows[i:i + KERNEL_BATCH]
            samples.add(batch, measure_kernels(batch, self.threads, self.device, overhead_ms=self.overhead_ms,
                                               seed=self.seed + i, clock=self.clock, runtime=self.runtime))
        return True


class CalibrationModels:
    """The calibration models of every space (:func:`calibration_archs_of`), measured end to end on
    several occasions; a model's latency is its median over the occasions."""

    def __init__(self, spaces: Sequence, n: int, seed: int, rounds: int):
        self.texts: list[str] = []
        self.space: list[str] = []
        self.archs: list = []
        for space in spaces:
            picked = calibration_archs_of(space, n, seed)
            self.texts += picked
            self.space += [space.name] * len(picked)
            self.archs += [space.to_ir(t) for t in picked]
        self.ms: list[list[float]] = [[] for _ in self.archs]
        self.n, self.rounds = n, rounds

    @property
    def occasions(self) -> int:
        return len(self.ms[0])

    def measure(self, session: Session) -> None:
        """One more occasion: every model measured ``rounds`` rounds, interleaved."""
        from .timing import measure_archs

        timings = measure_archs(self.archs, session.threads, device=session.device, rounds=self.rounds,
                                seed=session.seed + self.occasions, clock=session.clock, chunk=max(1, self.n),
                                runtime=session.runtime)
        for ms, t in zip(self.ms, timings):
            ms.append(t.median_ms)

    def measured_ms(self) -> np.ndarray:
        return np.array([np.median(ms) for ms in self.ms])


# ---------------------------------------------------------------------- stages
def measure_passes(session: Session, samples: Samples, models: CalibrationModels, order: list,
                   max_passes: int, until_s: float) -> None:
    """Up to ``max_passes`` passes over the kernels of ``order`` until ``until_s``, the calibration models
    measured after each complete pass."""
    for p in range(max_passes):
        if not session.measure(samples, order, until_s):
            break
        models.measure(session)
        session.log(f"pass {p + 1}: {len(samples)} kernels and {len(models.archs)} calibration models measured "
                    f"in {session.spent():.0f} s")


def one_of_each_type_first(order: list) -> list:
    """``order`` with the first kernel of each type moved to the front (every type gets measured)."""
    firsts = {r["type"]: i for i, r in reversed(list(enumerate(order)))}
    return [order[i] for i in firsts.values()] + [r for i, r in enumerate(order) if i not in firsts.values()]


def refine(session: Session, samples: Samples, rng: np.random.Generator, rounds: int, neighbours_per_miss: int,
           budget_s: float) -> tuple[dict, np.ndarray]:
    """Regressors fitted on ``samples``, refined by ``rounds`` rounds measuring the neighbours of the kernels
    they miss (out-of-bag error over 10 % and over twice the kernel's own measurement noise), up to 90 % of
    ``budget_s``; returns the last :func:`fit_all`."""
    regs, errors = fit_all(samples, session.seed)
    for r in range(rounds):
        keys = list(samples.rows)
        noise = np.array([np.median(samples.noise[k]) for k in keys])
        miss = np.nan_to_num(errors) > np.maximum(0.10, 2 * noise)
        worst = np.argsort(-np.where(miss, errors, -1.0))[:int(miss.sum())]
        new = {row_key(n): n for i in worst for n in neighbours(samples.rows[keys[i]], neighbours_per_miss, rng)}
        new = [n for k, n in new.items() if k not in samples.rows]
        session.log(f"refinement {r + 1}: {len(worst)} kernels over 10% out-of-bag error (and twice their "
                    f"noise), {len(new)} neighbours")
        if not new:
            break
        session.measure(samples, new, (0.65 + 0.25 * (r + 1) / rounds) * budget_s)
        regs, errors = fit_all(samples, session.seed)
    return regs, errors


def fit_corrections(device: MeasuredDevice, models: CalibrationModels) -> dict:
    """Set ``device.corrections`` from the calibration models (one per space and a pooled one) and return
    the calibration record (arrays ``arch``, ``space``, ``measured_ms``, ``raw_ms``, ``terms`` (models x
    :data:`~zeroshot.estimator.measured_device.PER_UNIT`), ``params``)."""
    table = to_table(models.archs)
    kt = decompose(table, device.fusion)
    raw = kt.sum_per_arch(device.raw_kernel_ms(kt))
    terms = model_terms(kt)
    measured = models.measured_ms()
    of_space = np.array(models.space)
    corrections = {POOLED: fit_correction(raw, terms, measured)}
    for sp in dict.fromkeys(of_space):
        m = of_space == sp
        corrections[sp] = fit_correction(raw[m], terms[m], measured[m])
    device.corrections = corrections
    return {"arch": np.array(models.texts), "space": of_space, "measured_ms": measured, "raw_ms": raw,
            "terms": terms, "params": table_counts(table)["params"]}


def profile_info(session: Session, device: MeasuredDevice, samples: Samples, errors: np.ndarray,
                 calibration: dict, spaces: Sequence, occasions: int) -> dict:
    """The device's ``info``: the machine, the session and how well kernels and calibration models fit."""
    import torch

    of_space, measured = calibration["space"], calibration["measured_ms"]
    pred = np.array([device.for_space(sp).apply_correction(r, t) for sp, r, t in
                     zip(of_space, calibration["raw_ms"], calibration["terms"])])
    err = np.abs(pred - measured) / measured
    oob = errors[np.isfinite(errors)]
    noise = [n for ns in samples.noise.values() for n in ns]
    return {
        "machine": platform.processor() or platform.machine(), "platform": platform.platform(),
        "torch": torch.__version__, "python": sys.version.split()[0], "torch_device": session.device,
        "threads": session.threads, "clock": session.clock, "runtime": session.runtime, "cpus": os.cpu_count(),
        "spaces": [s.name for s in spaces],
        "kernels_measured": len(samples), "call_overhead_ms": session.overhead_ms,
        "kernel_noise_median": float(np.median(noise)) if noise else None,
        "kernel_oob_within_10pct": float(np.mean(oob <= 0.10)) if len(oob) else None,
        "calibration_models": len(measured), "calibration_occasions": occasions,
        "calibration_within_10pct": float(np.mean(err <= 0.10)),
        "calibration_within_10pct_per_space": {sp: float(np.mean(err[of_space == sp] <= 0.10))
                                               for sp in dict.fromkeys(of_space)},
        "profile_seconds": round(session.spent(), 1), "seed": session.seed,
        "reference": reference_models(calibration, calibration["params"]),
    }


# ---------------------------------------------------------------------- the flow
def profile(spaces: Sequence, budget_s: float = 600, threads: int | None = 1, device: str = "auto",
            seed: int = 0, archs_per_space: int = 500, calibration_archs: int = 40, refine_rounds: int = 3,
            max_passes: int = 5, neighbours_per_miss: int = 2, calibration_rounds: int = 3, clock: str = "auto",
            name: str = "local", log=None, runtime: str = "torch") -> MeasuredDevice:
    """Measure this machine and fit a :class:`~zeroshot.estimator.measured_device.MeasuredDevice`: the kernels
    within about ``budget_s`` seconds, the calibration models' rounds on top (their time does not shrink with
    the budget).

    Budget shares: the kernels of ``archs_per_space`` random architectures of each space, most frequent
    first, then up to ``max_passes`` passes re-measuring them (their latency is the median over passes),
    65 %; adaptive refinement up to 90 % (it often needs less).  The ``calibration_archs`` calibration
    models of each space are measured ``calibration_rounds`` rounds before, between and after the kernel
    passes (their latency is the median over these occasions), so that both see the same mix of machine
    conditions.
    ``clock``: see :func:`zeroshot.estimator.timing.pick_clock`; ``runtime``: torch or onnxruntime (see
    :func:`zeroshot.estimator.timing.measure_archs`).  ``log`` (a callable taking a string) receives
    progress lines.  The measurements stay on the result (not saved): kernels as ``samples``, calibration
    models as ``calibration`` (dict of arrays: arch, space, measured_ms, raw_ms, terms, params); the first
    :data:`~zeroshot.estimator.speed_check.REFERENCE_MODELS` of each space, with their latency, go to
    ``info["reference"]`` for speed checks (:mod:`zeroshot.estimator.speed_check`).
    """
    from .timing import BusyMachineWarning, busy_reason

    check_seed(seed)
    with warnings.catch_warnings():          # one busy warning for the whole profile, below
        warnings.simplefilter("ignore", BusyMachineWarning)
        session = _start_session(threads, device, seed, clock, log or (lambda s: None), runtime)
        rng = np.random.default_rng(seed)
        pool = KernelPool.from_spaces(spaces, archs_per_space, seed)
        session.log(f"{len(pool)} distinct kernels in {archs_per_space} architectures of each of "
                    f"{', '.join(s.name for s in spaces)}; executor call overhead {session.overhead_ms * 1e3:.1f} us")
        samples, models = Samples(), CalibrationModels(spaces, calibration_archs, seed, calibration_rounds)
        models.measure(session)
        measure_passes(session, samples, models, one_of_each_type_first(pool.draw(len(pool), rng)), max_passes,
                       0.65 * budget_s)
        regs, errors = refine(session, samples, rng, refine_rounds, neighbours_per_miss, budget_s)
        models.measure(session)
    reason = busy_reason([n for ns in samples.noise.values() for n in ns])
    if reason:
        warnings.warn(f"the machine looked busy while profiling ({reason}): the device may be less accurate; "
                      f"profile on a quiet machine", BusyMachineWarning, stacklevel=2)
    session.log(f"calibration models measured on {models.occasions} occasions; {session.spent():.0f} s")
    result = MeasuredDevice(name, regs, {}, fusion=DEFAULT_FUSION)
    result.calibration = fit_corrections(result, models)
    result.info = profile_info(session, result, samples, errors, result.calibration, spaces, models.occasions)
    result.samples = samples
    session.log(f"done in {session.spent():.0f} s: {len(samples)} kernels, calibration models within 10%: "
                f"{result.info['calibration_within_10pct']:.0%}")
    return result


def _start_session(threads, device: str, seed: int, clock: str, log, runtime: str = "torch") -> Session:
    """The session's torch device and clock resolved, and the executor's call overhead measured."""
    import torch

    from .timing import call_overhead_ms, pick_clock, runtime_device

    start = time.perf_counter()
    dev = str(runtime_device(runtime, device))
    clock = pick_clock(clock, torch.device(dev), threads)
    overhead_ms = call_overhead_ms(threads, dev, clock=clock, runtime=runtime)
    return Session(threads, dev, clock, overhead_ms, seed, log, start, runtime)
