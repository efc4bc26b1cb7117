"""The ``measured`` device kind: kernel latencies learned from measurements on a real machine.

nn-Meter's recipe on torch: kernel configurations drawn from the layers of the search spaces
(:mod:`zeroshot.estimator.sampling`) are timed one by one (:mod:`zeroshot.estimator.timing`), one regressor per
kernel type learns latency from the kernel's features (:class:`BaselineForest`: a non-negative linear
baseline of the kernel's work, which extrapolates to larger kernels, times a random forest's correction), a
few rounds of adaptive sampling measure channel variations of the configurations the regressor gets wrong
(out-of-bag error over 10% and over twice their own measurement noise), and a model's latency is the sum
of its kernels' predictions.  Whole models also pay costs no single kernel shows (a kernel timed alone
finds its input and weights in cache and reuses its output buffer, and is called without the model's
per-layer dispatch); a correction ``scale * prediction + ms_per_mb * MB its ops write + ms_per_kernel +
ms_per_weight_mb * MB of its weights`` per kernel (:func:`correction_terms`) plus ``intercept_ms`` per model
(:attr:`~zeroshot.estimator.devices.Device.model_overhead_ms`) is fitted by non-negative least squares of
relative error on end-to-end measured calibration models, once per profiled space (the models of each space
pay these costs differently; on this machine's CPU, on a quiet machine, the pooled correction puts 84 % of
mbv2 networks within +-10 %, mbv2's own 95 %: benchmarks/results/estimator_accuracy.md) and once pooled
over all spaces, for other spaces (:meth:`MeasuredDevice.for_space`).  The calibration models are
measured on several occasions spread over the profile, so that they see the same mix of machine load as
the kernels.  This module holds the device and its regressors; :mod:`zeroshot.estimator.profiling`
measures a machine into one (:func:`~zeroshot.estimator.profiling.profile`, ``zeroshot device profile``).

A device is a JSON file naming a model file beside it (joblib, with the scikit-learn version that wrote
it and its SHA-256); loading it under another scikit-learn version, or with a changed model file, fails
with a message saying to retrain with ``zeroshot device profile``.  (A joblib file is a pickle: load
only device files you trust.)

Example
-------
>>> from zeroshot.spaces import get_space, to_table
>>> from zeroshot.estimator.kernel_table import KERNEL_TYPES, decompose
>>> space = get_space("nb201", channels=4, cells=1, resolution=8)
>>> table = to_table([space.to_ir(a) for a in space.sample(4, seed=0)])
>>> kt = decompose(table)
>>> x, types = feature_matrix(kt.cols), kt.cols["type"]
>>> y_ms = 1e-6 * x[:, FEATURES.index("macs")] + 1e-3           # the kernels of a made-up machine
>>> regs = {KERNEL_TYPES[t]: fit_regressor(x[types == t], y_ms[types == t]) for t in set(types.tolist())}
>>> dev = MeasuredDevice("toy", regs, {POOLED: {"intercept_ms": 0.5}})
>>> bool((dev.latency_ms(table) > 0.5).all())
True
"""
from __future__ import annotations

import copy
import hashlib
import json
from importlib.metadata import version
from pathlib import Path

import numpy as np

from .devices import Device, DeviceError, register_kind
from .kernel_table import DEFAULT_FUSION, KERNEL_TYPES, KernelTable

# scikit-learn and joblib are imported where used: loading an ``npu`` device must not pay for them.

__all__ = ["CORRECTION", "FEATURES", "PER_UNIT", "POOLED", "RETRAIN", "BaselineForest", "MeasuredDevice",
           "corrected_ms", "correction_terms", "feature_matrix", "fit_regressor", "launched", "model_terms",
           "sklearn_version", "weight_mb", "written_mb"]

#: Kernel features the regressors read, in column order.
FEATURES = ("h_in", "w_in", "c_in", "c_out", "k", "stride", "groups", "macs", "in_elems", "out_elems",
            "weight_elems", "act", "n_ops")
RETRAIN = "retrain with `zeroshot device profile -o FILE`"


def sklearn_version() -> str:
    """The installed scikit-learn's version (a device file records the one that trained it)."""
    return version("scikit-learn")


def feature_matrix(cols: dict, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
    """The :data:`FEATURES` of kernel rows ``rows`` of kernel columns ``cols``, as a float matrix."""
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
#: the per-unit costs of a correction, one per column of :func:`correction_terms`
PER_UNIT = ("ms_per_mb", "ms_per_kernel", "ms_per_weight_mb")
#: a correction's coefficients: ``scale`` on the kernels' predicted sum, :data:`PER_UNIT`, ``intercept_ms``
CORRECTION = ("scale", *PER_UNIT, "intercept_ms")


@register_kind
class MeasuredDevice(Device):
    """Per-kernel-type regressors plus per-model corrections (see the module docstring).

    ``corrections`` maps a space name, or :data:`POOLED`, to the :data:`CORRECTION` coefficients (a term
    missing from a device file, written before it existed, reads as 0; a missing scale as 1);
    :meth:`for_space` gives the device applying one space's correction (the pooled one for spaces it was
    not calibrated on), which is what :class:`~zeroshot.estimator.estimate.Estimator` uses.  A device used
    directly applies the pooled correction.
    """

    kind = "measured"
    kernel_bound = "measured"       # a regressor of timed kernels: no finer account of what limits it

    def __init__(self, name: str, regressors: dict, corrections: dict, info: dict | None = None,
                 fusion=DEFAULT_FUSION, description: str = "", space: str = POOLED):
        super().__init__(name, fusion, description)
        unknown = sorted(set(regressors) - set(KERNEL_TYPES))
        if unknown:
            raise DeviceError(f"regressors for unknown kernel type(s) {', '.join(unknown)}; {RETRAIN}")
        self.regressors = dict(regressors)
        self.corrections = {key: {k: float(c.get(k, 1.0 if k == "scale" else 0.0)) for k in CORRECTION}
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
        return self.apply_correction(self.raw_kernel_ms(kt), correction_terms(kt), intercept=False)

    def apply_correction(self, raw_ms, terms, intercept: bool = True):
        """:func:`corrected_ms` with this device's :attr:`correction`."""
        return corrected_ms(self.correction, raw_ms, terms, intercept)

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
            raise DeviceError(f"device {name!r}: 'corrections' must map space names to {{{', '.join(CORRECTION)}}}, "
                              f"got {json.dumps(corrections)[:60]}; {RETRAIN}")
        try:
            dev = cls(name, regressors, corrections, d.get("info"), d.get("fusion", DEFAULT_FUSION),
                      d.get("description", ""))
        except (TypeError, ValueError) as e:          # a field of the wrong JSON type or value
            raise DeviceError(f"device {name!r}: {e}; {RETRAIN}") from None
        dev.model_file, dev.model_sha256 = d["model_file"], d.get("model_sha256")
        return dev


def launched(kt: KernelTable) -> np.ndarray:
    """1 for each kernel a model runs, 0 for a ``zero`` kernel (an op that is not computed)."""
    return (kt.cols["type"] != KERNEL_TYPES.index("zero")).astype(float)


def written_mb(kt: KernelTable) -> np.ndarray:
    """Megabytes (fp32) each kernel's ops write: every op of a kernel writes a tensor of its output's shape."""
    return kt.cols["n_ops"] * kt.cols["out_elems"] * 4 / 1e6


def weight_mb(kt: KernelTable) -> np.ndarray:
    """Megabytes (fp32) of each kernel's weights, which a whole model reads from memory (a kernel timed alone
    finds them in cache)."""
    return kt.cols["weight_elems"] * 4 / 1e6


def correction_terms(kt: KernelTable) -> np.ndarray:
    """Per kernel, the quantities a correction charges per unit, columns as :data:`PER_UNIT`: MB written,
    launched (:func:`launched`), MB of weights.

    >>> from zeroshot.spaces import get_space, to_table
    >>> from zeroshot.estimator.kernel_table import decompose
    >>> space = get_space("mbv2")
    >>> kt = decompose(to_table([space.to_ir(space.sample(1, seed=0)[0])]))
    >>> terms = correction_terms(kt)
    >>> terms.shape == (len(kt.cols["type"]), len(PER_UNIT)), model_terms(kt).shape
    (True, (1, 3))
    """
    return np.column_stack([written_mb(kt), launched(kt), weight_mb(kt)])


def corrected_ms(correction: dict, raw_ms, terms, intercept: bool = True):
    """Latency from raw predictions and their :func:`correction_terms` (of kernels, or summed per model,
    :func:`model_terms`, with ``intercept``) under ``correction`` (the :data:`CORRECTION` coefficients).

    >>> c = {"scale": 0.9, "ms_per_mb": 0.0, "ms_per_kernel": 0.02, "ms_per_weight_mb": 0.1, "intercept_ms": 0.5}
    >>> round(float(corrected_ms(c, 10.0, np.array([3.0, 40, 5.0]))), 6)
    10.8
    """
    return (correction["scale"] * raw_ms + np.asarray(terms) @ np.array([correction[k] for k in PER_UNIT])
            + (correction["intercept_ms"] if intercept else 0.0))


def model_terms(kt: KernelTable) -> np.ndarray:
    """:func:`correction_terms` summed per model (rows: the table's architectures)."""
    return np.column_stack([kt.sum_per_arch(col) for col in correction_terms(kt).T])


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
