"""The ``measured`` device kind: kernel latencies learned from measurements on a real machine.

nn-Meter's recipe on torch: kernel configurations drawn from the layers of the search spaces
(:mod:`zeroshot.estimator.sampling`) are timed one by one (:mod:`zeroshot.estimator.timing`), one regressor per kernel
type learns latency from the kernel's features (:class:`BaselineForest`: a non-negative linear baseline of
the kernel's work, which extrapolates to larger kernels, times a random forest's correction), a few
rounds of adaptive sampling measure channel variations of the configurations the regressor gets wrong
(out-of-bag error over 10% and over twice their own measurement noise), and a model's latency is the sum
of its kernels' predictions.  Whole models also pay costs no single kernel shows (a kernel timed alone
finds its input and weights in cache and reuses its output buffer); a correction ``scale * prediction +
ms_per_mb * MB its ops write`` per kernel plus ``intercept_ms`` per model
(:attr:`~zeroshot.estimator.devices.Device.model_overhead_ms`) is fitted by non-negative least squares of relative
error on end-to-end measured calibration models, once per profiled space (the models of each space pay
these costs differently; on this machine's CPU, on a quiet machine, the pooled correction puts 84 % of
mbv2 networks within +-10 %, mbv2's own 95 %: benchmarks/results/estimator_accuracy.md) and once pooled
over all spaces, for other spaces (:meth:`MeasuredDevice.for_space`).  The calibration models are
measured on several occasions spread over the profile, so that they see the same mix of machine load as
the kernels.

A device is a JSON file naming a model file beside it (joblib, with the scikit-learn version that wrote
it and its SHA-256); loading it under another scikit-learn version, or with a changed model file, fails
with a message saying to retrain with ``zeroshot device profile``.  (A joblib file is a pickle: load
only device files you trust.)

Example
-------
>>> from zeroshot.spaces import get_space
>>> from zeroshot.spaces.ir import to_table
>>> space = get_space("nb201", channels=4, cells=1, resolution=8)
>>> dev = profile([space], budget_s=3, archs_per_space=4, calibration_archs=3, refine_rounds=1)
>>> float(dev.latency_ms(to_table([space.to_ir(space.sample(1)[0])]))[0]) > 0
True
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Sequence

import numpy as np

from zeroshot.spaces.ir import to_table

from .devices import Device, DeviceError, register_kind
from .kernel_table import DEFAULT_FUSION, KERNEL_TYPES, KernelTable, decompose
from .sampling import KernelPool, neighbours, row_key

# torch, scikit-learn and joblib are imported where used: loading an ``npu`` device must not pay for them.

#: Kernel features the regressors read, in column order.
FEATURES = ("h_in", "w_in", "c_in", "c_out", "k", "stride", "groups", "macs", "in_elems", "out_elems",
            "weight_elems", "act", "n_ops")
RETRAIN = "retrain with `zeroshot device profile -o FILE`"


def sklearn_version() -> str:
    return version("scikit-learn")


def feature_matrix(cols: dict, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
    return np.stack([np.asarray(cols[f])[rows] for f in FEATURES], axis=1).astype(np.float64)


#: Work terms of the linear baseline of :class:`BaselineForest`: MACs, elements read and written, weights.
_WORK = tuple(FEATURES.index(f) for f in ("macs", "in_elems", "out_elems", "weight_elems"))


def _work(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x[:, _WORK] / 1e6, np.ones((len(x), 1))], axis=1)


class BaselineForest:
    """Log latency = log(non-negative linear baseline of the work terms) + random-forest residual.

    The baseline (non-negative least squares of relative error on MACs, elements read, written, weights
    and a constant) extrapolates to kernels larger than any measured, where a forest alone predicts the
    largest leaf it knows; the forest learns the efficiency left over (cache fits, vector widths).
    ``predict`` and ``oob_prediction_`` give log milliseconds.
    """

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, x: np.ndarray, log_ms: np.ndarray) -> "BaselineForest":
        from scipy.optimize import nnls
        from sklearn.ensemble import RandomForestRegressor

        y = np.exp(log_ms)
        self.coef_, _ = nnls(_work(x) / y[:, None], np.ones(len(y)))
        resid = log_ms - self._base(x)
        self.forest_ = RandomForestRegressor(n_estimators=64, max_features=0.6, oob_score=len(x) >= 8,
                                             random_state=self.seed, n_jobs=1).fit(x, resid)
        oob = getattr(self.forest_, "oob_prediction_", None)
        self.oob_prediction_ = None if oob is None else oob + self._base(x)
        return self

    def _base(self, x: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(_work(x) @ self.coef_, 1e-6))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._base(x) + self.forest_.predict(x)


def fit_regressor(x: np.ndarray, y_ms: np.ndarray, seed: int = 0) -> BaselineForest:
    """A :class:`BaselineForest` on log latency (relative errors weigh the same for small and large
    kernels)."""
    return BaselineForest(seed).fit(x, np.log(np.maximum(y_ms, 1e-5)))


POOLED = "*"          # key of the correction fitted on the calibration models of every space


@register_kind
class MeasuredDevice(Device):
    """Per-kernel-type regressors plus per-model corrections (see the module docstring).

    ``corrections`` maps a space name, or :data:`POOLED`, to ``{scale, ms_per_mb, intercept_ms}``;
    :meth:`for_space` gives the device applying one space's correction (the pooled one for spaces it was
    not calibrated on), which is what :class:`~zeroshot.estimator.estimate.Estimator` uses.  A device used
    directly applies the pooled correction.
    """

    kind = "measured"

    def __init__(self, name: str, regressors: dict, corrections: dict, info: dict | None = None,
                 fusion=DEFAULT_FUSION, description: str = "", space: str = POOLED):
        super().__init__(name, fusion, description)
        unknown = sorted(set(regressors) - set(KERNEL_TYPES))
        if unknown:
            raise DeviceError(f"regressors for unknown kernel type(s) {', '.join(unknown)}; {RETRAIN}")
        self.regressors = dict(regressors)
        self.corrections = {key: {k: float(c.get(k, d)) for k, d in
                                  (("scale", 1.0), ("ms_per_mb", 0.0), ("intercept_ms", 0.0))}
                            for key, c in {POOLED: {}, **corrections}.items()}
        self.space = space if space in self.corrections else POOLED
        self.info = dict(info or {})
        self.model_file: str | None = None        # set when saved or loaded
        self.model_sha256: str | None = None

    @property
    def correction(self) -> dict:
        """The correction applied: that of :attr:`space`."""
        return self.corrections[self.space]

    def for_space(self, space_name: str) -> "MeasuredDevice":
        dev = copy.copy(self)
        dev.space = space_name if space_name in self.corrections else POOLED
        return dev

    # ------------------------------------------------------------------ prediction
    def raw_kernel_ms(self, kt: KernelTable) -> np.ndarray:
        """Regressor predictions (ms) of every kernel row, before the per-model correction."""
        out = np.zeros(len(kt.cols["type"]))
        for t in np.unique(kt.cols["type"]):
            name = KERNEL_TYPES[t]
            rows = np.flatnonzero(kt.cols["type"] == t)
            if name == "zero" and name not in self.regressors:
                continue
            if name not in self.regressors:
                raise DeviceError(f"device {self.name!r} was profiled without {name!r} kernels (it knows "
                                  f"{', '.join(sorted(self.regressors))}); profile it on a space that has them: "
                                  f"zeroshot device profile --spaces SPACE -o FILE")
            x = feature_matrix(kt.cols, rows)
            uniq, inverse = np.unique(x, axis=0, return_inverse=True)
            out[rows] = np.exp(self.regressors[name].predict(uniq))[inverse.ravel()]
        return out

    def kernel_latency_ms(self, kt: KernelTable) -> np.ndarray:
        return self.apply_correction(self.raw_kernel_ms(kt), written_mb(kt), intercept=False)

    def apply_correction(self, raw_ms, mb, intercept: bool = True):
        """Corrected latency from raw predictions and megabytes written (of kernels, or summed per model
        with ``intercept``)."""
        c = self.correction
        return c["scale"] * raw_ms + c["ms_per_mb"] * mb + (c["intercept_ms"] if intercept else 0.0)

    @property
    def model_overhead_ms(self) -> float:
        return self.correction["intercept_ms"]

    def summary(self) -> str:
        return (f"measured on {self.info.get('machine', '?')} ({self.info.get('torch_device', '?')}, "
                f"{self.info.get('threads', '?')} thread(s)), {self.info.get('kernels_measured', '?')} kernels")

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "description": self.description,
                "fusion": list(self.fusion), "model_file": self.model_file, "model_sha256": self.model_sha256,
                "sklearn_version": sklearn_version(), "kernel_types": sorted(self.regressors),
                "features": list(FEATURES), "corrections": self.corrections, "info": self.info}

    def save(self, path) -> None:
        """Write the JSON device to ``path`` and its regressors to ``path`` with suffix ``.joblib``."""
        import joblib

        path = Path(path)
        model = path.with_suffix(".joblib")
        joblib.dump(self.regressors, model, compress=3)
        self.model_file, self.model_sha256 = model.name, _sha256(model)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, d: dict) -> "MeasuredDevice":
        return cls.from_file(d, None)

    @classmethod
    def from_file(cls, d: dict, path) -> "MeasuredDevice":
        """The device of a parsed JSON object read from ``path`` (its model file is resolved beside it)."""
        import joblib

        name = d.get("name", "measured")
        saved = d.get("sklearn_version")
        if saved != sklearn_version():
            raise DeviceError(f"device {name!r} was trained with scikit-learn {saved} but {sklearn_version()} "
                              f"is installed; its regressors cannot be trusted across versions: {RETRAIN}")
        if list(d.get("features", ())) != list(FEATURES):
            raise DeviceError(f"device {name!r} uses kernel features {d.get('features')}, this version expects "
                              f"{list(FEATURES)}: {RETRAIN}")
        if "corrections" not in d:
            raise DeviceError(f"device {name!r} has no per-space corrections (an older format); {RETRAIN}")
        if not d.get("model_file"):
            raise DeviceError(f"device {name!r} names no model_file; {RETRAIN}")
        model = Path(path).parent / d["model_file"] if path is not None else Path(d["model_file"])
        if not model.exists():
            raise DeviceError(f"model file {model} of device {name!r} is missing; keep it beside the JSON "
                              f"file or {RETRAIN}")
        if d.get("model_sha256") and _sha256(model) != d["model_sha256"]:
            raise DeviceError(f"model file {model} does not match device {name!r} (SHA-256 differs); {RETRAIN}")
        try:
            regressors = joblib.load(model)
        except Exception as e:  # unpickling errors of any kind mean the same thing here
            raise DeviceError(f"cannot load model file {model} ({type(e).__name__}: {e}); {RETRAIN}") from None
        if not isinstance(regressors, dict) or sorted(regressors) != sorted(d.get("kernel_types", ())):
            raise DeviceError(f"model file {model} does not hold regressors for the kernel types the device "
                              f"lists ({d.get('kernel_types')}); {RETRAIN}")
        corrections = d["corrections"]
        if not isinstance(corrections, dict) or not all(isinstance(c, dict) for c in corrections.values()):
            raise DeviceError(f"device {name!r}: 'corrections' must map space names to {{scale, ms_per_mb, "
                              f"intercept_ms}}, got {json.dumps(corrections)[:60]}; {RETRAIN}")
        try:
            dev = cls(name, regressors, corrections, d.get("info"), d.get("fusion", DEFAULT_FUSION),
                      d.get("description", ""))
        except (TypeError, ValueError) as e:          # a field of the wrong JSON type or value
            raise DeviceError(f"device {name!r}: {e}; {RETRAIN}") from None
        dev.model_file, dev.model_sha256 = d["model_file"], d.get("model_sha256")
        return dev


def written_mb(kt: KernelTable) -> np.ndarray:
    """Megabytes (fp32) each kernel's ops write: every op of a kernel writes a tensor of its output's shape."""
    return kt.cols["n_ops"] * kt.cols["out_elems"] * 4 / 1e6


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------------- profiling
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


def fit_correction(raw_sum_ms: np.ndarray, mb: np.ndarray, measured_ms: np.ndarray) -> dict:
    """Non-negative ``scale, ms_per_mb, intercept_ms`` minimising squared relative error."""
    from scipy.optimize import nnls

    a = np.stack([raw_sum_ms, mb, np.ones_like(mb)], axis=1) / measured_ms[:, None]
    coef, _ = nnls(a, np.ones_like(measured_ms))
    if coef[0] == 0:      # degenerate calibration (too few or too noisy models): plain sum
        coef = np.array([1.0, 0.0, 0.0])
    return {"scale": float(coef[0]), "ms_per_mb": float(coef[1]), "intercept_ms": float(coef[2])}


def calibration_archs_of(space, n: int, seed: int = 0) -> list[str]:
    """The ``n`` calibration architectures of ``space`` that :func:`profile` measures with ``seed``."""
    return space.sample(min(n, space.size), seed=seed + 1)


def profile(spaces: Sequence, budget_s: float = 600, threads: int | None = 1, device: str = "auto",
            seed: int = 0, archs_per_space: int = 500, calibration_archs: int = 40, refine_rounds: int = 3,
            max_passes: int = 5, neighbours_per_miss: int = 2, calibration_rounds: int = 3, clock: str = "auto",
            name: str = "local",
            log=None) -> MeasuredDevice:
    """Measure this machine and fit a :class:`MeasuredDevice` within about ``budget_s`` seconds.

    Budget shares: the kernels of ``archs_per_space`` random architectures of each space, most frequent
    first, then up to ``max_passes`` passes re-measuring them (their latency is the median over passes),
    65 %; adaptive refinement up to 90 % (it often needs less).  The ``calibration_archs`` calibration
    models of each space are measured ``calibration_rounds`` rounds before, between and after the kernel
    passes (their latency is the median over these occasions), so that both see the same mix of machine
    conditions.
    ``clock``: see :func:`zeroshot.estimator.timing.pick_clock`.  ``log`` (a callable taking a string) receives
    progress lines.  The measurements stay on the result (not saved): kernels as ``samples``, calibration
    models as ``calibration`` (dict of arrays: arch, space, measured_ms, raw_ms, mb).
    """
    import torch

    from .timing import call_overhead_ms, measure_archs, measure_kernels, pick_clock, torch_device

    log = log or (lambda s: None)
    start = time.perf_counter()
    spent = lambda: time.perf_counter() - start  # noqa: E731
    rng = np.random.default_rng(seed)
    dev = str(torch_device(device))
    clock = pick_clock(clock, torch.device(dev), threads)
    pool = KernelPool.from_spaces(spaces, archs_per_space, seed)
    overhead = call_overhead_ms(threads, dev, clock=clock)
    log(f"{len(pool)} distinct kernels in {archs_per_space} architectures of each of "
        f"{', '.join(s.name for s in spaces)}; executor call overhead {overhead * 1e3:.1f} us")
    samples = Samples()

    def measure(rows, until_s):
        for i in range(0, len(rows), 32):
            if spent() > until_s and len(samples):
                return False
            batch = rows[i:i + 32]
            samples.add(batch, measure_kernels(batch, threads, dev, overhead_ms=overhead, seed=seed + i,
                                               clock=clock))
        return True

    # calibration models, measured a few rounds on every occasion (before, between and after the kernel
    # passes) so that they see the same mix of machine conditions as the kernels
    texts, of_space, cal = [], [], []
    for space in spaces:
        picked = calibration_archs_of(space, calibration_archs, seed)
        texts += picked
        of_space += [space.name] * len(picked)
        cal += [space.to_ir(t) for t in picked]
    cal_ms: list[list[float]] = [[] for _ in cal]

    def calibrate_once():
        timings = measure_archs(cal, threads, device=dev, rounds=calibration_rounds, seed=seed + len(cal_ms[0]),
                                clock=clock, chunk=max(1, calibration_archs))
        for ms, t in zip(cal_ms, timings):
            ms.append(t.median_ms)

    calibrate_once()
    order = pool.draw(len(pool), rng)
    firsts = {r["type"]: i for i, r in reversed(list(enumerate(order)))}    # one of each type up front
    order = [order[i] for i in firsts.values()] + [r for i, r in enumerate(order) if i not in firsts.values()]
    for p in range(max_passes):
        if not measure(order, 0.65 * budget_s):
            break
        calibrate_once()
        log(f"pass {p + 1}: {len(samples)} kernels and {len(cal)} calibration models measured in {spent():.0f} s")
    regs, errors = fit_all(samples, seed)
    for r in range(refine_rounds):
        keys = list(samples.rows)
        # a miss: out-of-bag error over 10 % and over twice the configuration's own measurement noise
        noise = np.array([np.median(samples.noise[k]) for k in keys])
        miss = np.nan_to_num(errors) > np.maximum(0.10, 2 * noise)
        worst = np.argsort(-np.where(miss, errors, -1.0))[:int(miss.sum())]
        new = {row_key(n): n for i in worst for n in neighbours(samples.rows[keys[i]], neighbours_per_miss, rng)}
        new = [n for k, n in new.items() if k not in samples.rows]
        log(f"refinement {r + 1}: {len(worst)} kernels over 10% out-of-bag error (and twice their noise), "
            f"{len(new)} neighbours")
        if not new:
            break
        measure(new, (0.65 + 0.25 * (r + 1) / refine_rounds) * budget_s)
        regs, errors = fit_all(samples, seed)
    calibrate_once()
    log(f"calibration models measured on {len(cal_ms[0])} occasions; {spent():.0f} s")
    result = MeasuredDevice(name, regs, {}, fusion=DEFAULT_FUSION)
    # per-model corrections from whole models measured end to end: one per space and a pooled one
    kt = decompose(to_table(cal), result.fusion)
    raw = kt.sum_per_arch(result.raw_kernel_ms(kt))
    mb = kt.sum_per_arch(written_mb(kt))
    measured = np.array([np.median(ms) for ms in cal_ms])
    of_space = np.array(of_space)
    corrections = {POOLED: fit_correction(raw, mb, measured)}
    for sp in dict.fromkeys(of_space):
        m = of_space == sp
        corrections[sp] = fit_correction(raw[m], mb[m], measured[m])
    result.corrections = corrections
    pred = np.array([result.for_space(sp).apply_correction(r, b) for sp, r, b in zip(of_space, raw, mb)])
    err = np.abs(pred - measured) / measured
    within = float(np.mean(err <= 0.10))
    within_space = {sp: float(np.mean(err[of_space == sp] <= 0.10)) for sp in dict.fromkeys(of_space)}
    oob = errors[np.isfinite(errors)]
    noise = [n for ns in samples.noise.values() for n in ns]
    result.info = {
        "machine": platform.processor() or platform.machine(), "platform": platform.platform(),
        "torch": torch.__version__, "python": sys.version.split()[0], "torch_device": dev,
        "threads": threads, "clock": clock, "cpus": os.cpu_count(), "spaces": [s.name for s in spaces],
        "kernels_measured": len(samples), "call_overhead_ms": overhead,
        "kernel_noise_median": float(np.median(noise)) if noise else None,
        "kernel_oob_within_10pct": float(np.mean(oob <= 0.10)) if len(oob) else None,
        "calibration_models": len(measured), "calibration_occasions": len(cal_ms[0]),
        "calibration_within_10pct": within,
        "calibration_within_10pct_per_space": within_space,
        "profile_seconds": round(spent(), 1), "seed": seed,
    }
    result.samples = samples
    result.calibration = {"arch": np.array(texts), "space": of_space, "measured_ms": measured, "raw_ms": raw,
                          "mb": mb}
    log(f"done in {spent():.0f} s: {len(samples)} kernels, calibration models within 10%: {within:.0%}")
    return result
