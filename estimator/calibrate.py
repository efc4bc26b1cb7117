"""Few-shot device calibration from whole-model latencies, and the ``calibrated`` device kind.

A device's latency is modelled as ``intercept + sum over kernels of theta . f(kernel)``
(:data:`FEATURE_VERSION` fixes the features ``f``): per kernel type and kernel size (1, 3, 5, 7+), the
kernel count, its op count before fusion, MACs and elements moved (input + output + weights),
each also spread over log2 knots of the output resolution and of the output channels (piecewise-linear
"tent" weights, so costs may vary smoothly with shape), and all of it twice: for every kernel as run
eagerly, and for the kernels left after constant folding and dead-op elimination
(:mod:`zeroshot.estimator.folding`), as graph compilers run them.

Calibration from a handful of measured architectures uses *source devices* fitted on whole search spaces
(:func:`fit_source`, stored in ``estimator/calibration_prior.json``, see :func:`build_prior`), each scaled
to a mean latency of 1 on the measured architectures.  The target's parameters ``[intercept, theta]``
(normalised the same way) get a Gaussian prior (empirical Bayes): its mean is a weighted mean of the
sources' (a source whose predictions line up with the measurements weighs more), its covariance a sum
of components with the variances of :data:`PRIOR_VARIANCES` (``local``: see below):

- ``sources``: the sources' deviations from their mean (any combination of the source devices, negative
  weights included, with the spread the sources have);
- ``scale`` and ``intercept``: the mean device scaled, a per-network overhead;
- ``primitives``: device-independent directions (total ops, MACs, elements moved), for a device unlike
  every source;
- ``local``: every parameter on its own, with the spread of the sources' values of it, so that with more
  measurements the fit leaves the span of the sources.

The measurements are latency (normalised by their mean) plus Gaussian noise; the noise variance and the
``local`` variance are picked by marginal likelihood from :data:`NOISE_GRID` and :data:`LOCAL_GRID`; one
robust round inflates the noise of measurements that sit far from their leave-one-out prediction.  The
calibrated parameters are the posterior mean (closed form, one ``k x k`` solve).  They may be negative:
they fit whole-model latency, and a per-kernel share of it is not a latency on its own.  So a calibrated
device's whole-model predictions are floored at :data:`FLOOR_FRACTION` of its fastest calibration
measurement (never below :data:`MIN_FLOOR_MS`): a network far faster than every measured one is an
extrapolation of the linear model, and no network runs in zero or negative time.

Example
-------
>>> import numpy as np
>>> from zeroshot.spaces import get_space
>>> space = get_space("nb201")
>>> archs = space.sample(12, seed=0)
>>> latency = predict_features(arch_features(space, archs), *load_prior().source(0))
>>> device = calibrate(space, archs, latency, name="twin")
>>> bool(np.allclose(device.predict(space, archs), latency, rtol=0.05))
True
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import sparse
from scipy.optimize import nnls

from zeroshot.spaces.ir import OpTable, to_table

from .devices import Device, DeviceError, register_kind
from .folding import live_kernels
from .kernel_table import DEFAULT_FUSION, KERNEL_TYPES, KernelTable, decompose

FEATURE_VERSION = 1
PRIOR_PATH = Path(__file__).with_name("calibration_prior.json")

SCOPES = ("all", "live")                     # every kernel / kernels left after folding
VALUES = ("n", "ops", "macs", "mem")         # kernel count, ops before fusion, MACs, elements moved
K_BUCKETS = 8                                # kernel size 0..6, 7 = 7 and larger
RES_KNOTS = tuple(2 ** j for j in range(0, 10))     # output height 1 .. 512
CH_KNOTS = tuple(2 ** j for j in range(2, 13))      # output channels 4 .. 4096
WEIGHTS = ("",) + tuple(f"h{v}" for v in RES_KNOTS) + tuple(f"c{v}" for v in CH_KNOTS)
N_COLS = len(SCOPES) * len(KERNEL_TYPES) * K_BUCKETS * len(VALUES) * len(WEIGHTS)

#: Prior variances of the calibration's components (normalised units: a device of mean latency 1).  The
#: ``sources`` variance and SIMILARITY are the pair with the best leave-one-device-out mean Spearman at 10
#: samples over the shared devices of both spaces; benchmarks/calibration_hw.py reports figures with the
#: pair chosen for each held-out device by nested leave-one-out instead.
PRIOR_VARIANCES = {"sources": 0.3, "scale": 0.1, "intercept": 0.1, "primitives": 0.01}
ROBUST_Z = 3.0
SIMILARITY = 2.0
#: chosen per calibration by the marginal likelihood of the measurements (empirical Bayes)
LOCAL_GRID = (0.01, 0.1, 1.0)
NOISE_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
PRIMITIVE_VALUES = ("ops", "macs", "mem")
#: a calibrated device predicts at least this share of its fastest calibration measurement: the fastest
#: networks of the shared devices run at 0.23-0.75 of their space's mean, so the floor catches predictions
#: the linear model extrapolates to near or below zero (and NB201 cells whose output is constant, folded
#: away to ~0.003 ms on pixel3 / raspi4, which stay below every other network, tied)
FLOOR_FRACTION = 0.1
#: the floor of a device file without ``floor_ms`` (calibrated before the floor existed)
MIN_FLOOR_MS = 1e-3


# ------------------------------------------------------------------------------------------ features
def column_name(col: int) -> str:
    """Readable name of feature column ``col``, e.g. ``live.dwconv.k5.macs.c64``."""
    rest, w = divmod(int(col), len(WEIGHTS))
    rest, v = divmod(rest, len(VALUES))
    rest, kb = divmod(rest, K_BUCKETS)
    scope, t = divmod(rest, len(KERNEL_TYPES))
    return ".".join([SCOPES[scope], KERNEL_TYPES[t], f"k{kb}", VALUES[v]] + ([WEIGHTS[w]] if w else []))


def column_index(name: str) -> int:
    """Inverse of :func:`column_name`; raises ``KeyError`` naming what is wrong."""
    parts = name.split(".")
    if len(parts) not in (4, 5) or not parts[2].startswith("k"):
        raise KeyError(f"feature {name!r} is not SCOPE.TYPE.kK.VALUE[.WEIGHT]")
    scope, typ, kb, val = parts[:4]
    w = parts[4] if len(parts) == 5 else ""
    for what, value, allowed in (("scope", scope, SCOPES), ("kernel type", typ, KERNEL_TYPES),
                                 ("value", val, VALUES), ("weight", w, WEIGHTS)):
        if value not in allowed:
            raise KeyError(f"feature {name!r}: unknown {what} {value!r}; choose from {', '.join(allowed)}")
    k = int(kb[1:]) if kb[1:].isdigit() else -1
    if not 0 <= k < K_BUCKETS:
        raise KeyError(f"feature {name!r}: kernel size bucket must be k0..k{K_BUCKETS - 1}")
    idx = (SCOPES.index(scope) * len(KERNEL_TYPES) + KERNEL_TYPES.index(typ)) * K_BUCKETS + k
    return (idx * len(VALUES) + VALUES.index(val)) * len(WEIGHTS) + WEIGHTS.index(w)


def _tent(x: np.ndarray, knots: Sequence[int]):
    """The two knots (indices) around ``log2 x`` and their piecewise-linear weights (clipped at the ends)."""
    pos = np.clip(np.log2(np.maximum(x, 1)), np.log2(knots[0]), np.log2(knots[-1])) - np.log2(knots[0])
    lo = np.minimum(np.floor(pos).astype(np.int64), len(knots) - 2)
    frac = pos - lo
    return (lo, 1.0 - frac), (lo + 1, frac)


def kernel_slots(kt: KernelTable, live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sparse features of every kernel: ``cols`` and ``vals`` of shape ``(n_kernels, slots)``; a
    kernel's feature vector is the sum of ``vals`` placed at ``cols`` (a column may repeat)."""
    c = kt.cols
    values = (np.ones(len(c["type"])), c["n_ops"].astype(float), c["macs"].astype(float),
              (c["in_elems"] + c["out_elems"] + c["weight_elems"]).astype(float))
    weightings = [(np.zeros(len(c["type"]), np.int64), 1.0)]
    offset = 1
    for x, knots in ((c["h_out"], RES_KNOTS), (c["c_out"], CH_KNOTS)):
        weightings += [(offset + i, w) for i, w in _tent(x, knots)]
        offset += len(knots)
    cols, vals = [], []
    for scope, mask in enumerate((np.ones(len(live)), live.astype(float))):
        base = (scope * len(KERNEL_TYPES) + c["type"]) * K_BUCKETS + np.minimum(c["k"], K_BUCKETS - 1)
        for v, value in enumerate(values):
            for w, weight in weightings:
                cols.append((base * len(VALUES) + v) * len(WEIGHTS) + w)
                vals.append(value * weight * mask)
    return np.stack(cols, 1), np.stack(vals, 1)


def table_features(table: OpTable, fusion=DEFAULT_FUSION, chunk: int = 2048) -> sparse.csr_matrix:
    """Per-architecture feature sums, ``(n_archs, N_COLS)`` sparse, of an op table."""
    blocks = []
    for start in range(0, len(table), chunk):
        part = _slice_table(table, start, min(start + chunk, len(table)))
        kt = decompose(part, fusion)
        cols, vals = kernel_slots(kt, live_kernels(part, kt))
        rows = np.repeat(kt.arch_of, cols.shape[1])
        blocks.append(sparse.csr_matrix((vals.ravel(), (rows, cols.ravel())), shape=(len(part), N_COLS)))
    return sparse.vstack(blocks, format="csr") if blocks else sparse.csr_matrix((0, N_COLS))


def _slice_table(table: OpTable, a: int, b: int) -> OpTable:
    if a == 0 and b == len(table):
        return table
    r0, r1 = table.ptr[a], table.ptr[b]
    e0, e1 = table.edge_ptr[r0], table.edge_ptr[r1]
    return OpTable(table.ptr[a:b + 1] - r0, {k: v[r0:r1] for k, v in table.cols.items()},
                   table.in_size[a:b], table.in_last[a:b], table.edge_ptr[r0:r1 + 1] - e0, table.edges[e0:e1])


def arch_features(space, archs, fusion=DEFAULT_FUSION) -> sparse.csr_matrix:
    """Feature sums of architectures of ``space`` given as encodings or codes."""
    return table_features(to_table([space.to_ir(a) for a in archs]), fusion)


def predict_features(features: sparse.spmatrix, intercept: float, theta: np.ndarray) -> np.ndarray:
    """``intercept + features @ theta`` as a flat array."""
    return intercept + np.asarray(features @ theta).ravel()


# ------------------------------------------------------------------------------------------ fitting
def fit_source(features: sparse.spmatrix, latency_ms: np.ndarray) -> tuple[float, np.ndarray]:
    """A source device fitted on many architectures by NNLS, normalised to a mean latency of 1:
    ``(intercept, theta)`` with ``theta`` a dense vector of :data:`N_COLS`."""
    y = np.asarray(latency_ms, float)
    y = y / y.mean()
    active, scale, design = _normalised_design(features)
    x = nnls(design, y, maxiter=50 * len(active) + 500)[0]
    theta = np.zeros(N_COLS)
    theta[active] = x[1:] / scale
    return float(x[0]), theta


@dataclass
class Prior:
    """Source devices: ``labels[i]`` (space/device), ``intercepts[i]``, rows of ``thetas`` (normalised)."""

    labels: list[str]
    intercepts: np.ndarray
    thetas: np.ndarray

    def source(self, i: int) -> tuple[float, np.ndarray]:
        return float(self.intercepts[i]), self.thetas[i]

    def subset(self, space_name: str | None) -> "Prior":
        """The sources measured on ``space_name``; all of them when there are none."""
        keep = [i for i, lab in enumerate(self.labels) if lab.split("/")[0] == space_name] or \
            list(range(len(self.labels)))
        return Prior([self.labels[i] for i in keep], self.intercepts[keep], self.thetas[keep])

    def to_dict(self) -> dict:
        return {"feature_version": FEATURE_VERSION, "fusion": list(DEFAULT_FUSION),
                "sources": [{"label": lab, "intercept": _round(b), "theta": _sparse_theta(th)}
                            for lab, b, th in zip(self.labels, self.intercepts, self.thetas)]}

    @classmethod
    def from_dict(cls, d: dict, where: str = "prior") -> "Prior":
        _check_version(d, where)
        src = d.get("sources") or []
        if not src:
            raise DeviceError(f"{where} has no sources")
        return cls([s["label"] for s in src], np.array([float(s["intercept"]) for s in src]),
                   np.array([_dense_theta(s["theta"], where) for s in src]))


def load_prior(path=PRIOR_PATH) -> Prior:
    """The source devices shipped with zeroshot (or another prior file)."""
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DeviceError(f"cannot read calibration prior {path}: {e}; rebuild it with "
                          f"`python -m zeroshot.estimator.calibrate`") from None
    return Prior.from_dict(d, str(path))


def calibrate_features(features: sparse.spmatrix, latency_ms: np.ndarray, prior: Prior,
                       variances: dict | None = None, noise: float | None = None,
                       robust_z: float = ROBUST_Z, similarity: float = SIMILARITY) -> tuple[float, np.ndarray]:
    """``(intercept_ms, theta)`` of a device from the features and latencies of measured architectures:
    the posterior mean under the Gaussian prior of the module docstring.

    ``variances`` overrides entries of :data:`PRIOR_VARIANCES` (or fixes ``local``); the ``local``
    variance (from :data:`LOCAL_GRID`) and ``noise`` (variance of a measurement relative to the mean
    latency, from :data:`NOISE_GRID`) default to the pair with the highest marginal likelihood of the
    measurements; a measurement whose leave-one-out residual exceeds ``robust_z`` standard deviations
    gets its noise inflated to that bound (once; ``inf``: never).  Each source weighs
    ``(residual variance of a line through its predictions and the measurements) ** -similarity`` in the
    prior mean and covariance (0: all alike).
    """
    y = np.asarray(latency_ms, float)
    if len(y) < 2 or features.shape[0] != len(y):
        raise ValueError(f"need features and latencies of at least 2 architectures, got {features.shape[0]} "
                         f"and {len(y)}")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise ValueError("latencies must be positive finite milliseconds")
    unknown = set(variances or ()) - set(PRIOR_VARIANCES) - {"local"}
    if unknown:
        raise ValueError(f"unknown prior component(s) {', '.join(sorted(unknown))}; choose from "
                         f"{', '.join(PRIOR_VARIANCES)}, local")
    var = {**PRIOR_VARIANCES, **(variances or {})}
    ybar = y.mean()
    mean, comps = _prior_components(features, prior, y / ybar, similarity)
    a = sparse.hstack([np.ones((len(y), 1)), features], format="csr")
    resid = y / ybar - a @ mean
    seen = {c: (a.multiply(u.d).tocsr() if isinstance(u, Diagonal) else a @ u) for c, u in comps.items()}
    grams = {c: _gram(seen[c]) for c in comps}
    fixed = sum(var[c] * grams[c] for c in comps if c != "local")
    local = LOCAL_GRID if "local" not in (variances or {}) else (var["local"],)
    noises = NOISE_GRID if noise is None else (noise,)
    var["local"], noise = max(((v, z) for v in local for z in noises),
                              key=lambda vz: _log_evidence(fixed + vz[0] * grams["local"], resid, vz[1]))
    gram = fixed + var["local"] * grams["local"]
    noise = np.full(len(y), float(noise))
    if np.isfinite(robust_z):
        inv = np.linalg.inv(gram + np.diag(noise))
        z = (inv @ resid) / np.sqrt(np.diag(inv))          # standardised leave-one-out residuals
        noise *= np.maximum(1.0, (z / robust_z) ** 2)
    alpha = np.linalg.solve(gram + np.diag(noise), resid)
    beta = mean.copy()
    for c, u in comps.items():
        w = np.asarray(seen[c].T @ alpha).ravel()
        beta += var[c] * (u.d * w if isinstance(u, Diagonal) else u @ w)
    return float(beta[0]) * ybar, beta[1:] * ybar


@dataclass
class Diagonal:
    """A diagonal covariance factor (standard deviation ``d`` per parameter)."""

    d: np.ndarray


def _prior_components(features, prior: Prior, y_norm: np.ndarray, similarity: float):
    """Prior mean of ``[intercept, theta]`` (normalised) and the covariance factors of its components."""
    beta = np.column_stack([prior.intercepts, prior.thetas])
    pred = np.asarray(features @ prior.thetas.T) + prior.intercepts       # (k, sources)
    norm = pred.mean(0)
    norm[norm <= 0] = 1.0
    beta = beta / norm[:, None]                    # every source: mean 1 on the measured architectures
    fit = np.array([_line_residual(p, y_norm) for p in (pred / norm).T])
    weight = (1.0 / np.maximum(fit, 1e-12)) ** similarity      # sources like the target weigh more
    weight /= weight.sum()
    mean = weight @ beta
    n_src = len(beta)
    dev = ((beta - mean) * np.sqrt(weight * n_src)[:, None]).T / np.sqrt(max(n_src - 1, 1))
    prim = np.column_stack([np.zeros(len(_PRIMITIVES)), _PRIMITIVES])
    prim_mean = np.asarray(features @ _PRIMITIVES.T).mean(0)
    prim_mean[prim_mean <= 0] = 1.0
    spread = np.r_[0.0, beta[:, 1:].std(0)]
    comps = {"sources": dev, "scale": mean[:, None], "intercept": np.eye(len(mean), 1),
             "local": Diagonal(spread), "primitives": (prim / prim_mean[:, None] - mean).T}
    return mean, comps


def _line_residual(x: np.ndarray, y: np.ndarray) -> float:
    """Residual variance of the least-squares line ``y ~ a + b x``."""
    xc, yc = x - x.mean(), y - y.mean()
    ss = xc @ xc
    return float(np.mean((yc - (xc @ yc / ss if ss > 0 else 0.0) * xc) ** 2))


def _gram(x) -> np.ndarray:
    return np.asarray((x @ x.T).todense() if sparse.issparse(x) else x @ x.T)


def _log_evidence(gram: np.ndarray, resid: np.ndarray, noise: float) -> float:
    """Log marginal likelihood (up to a constant) of ``resid ~ N(0, gram + noise I)``."""
    chol = np.linalg.cholesky(gram + noise * np.eye(len(resid)))
    z = np.linalg.solve(chol, resid)
    return float(-0.5 * z @ z - np.log(np.diag(chol)).sum())


def _primitive_thetas() -> np.ndarray:
    """Device-independent cost directions: total ops, MACs and elements moved, eager and folded."""
    rows = np.zeros((len(SCOPES) * len(PRIMITIVE_VALUES), N_COLS))
    for i, (scope, value) in enumerate((s, v) for s in SCOPES for v in PRIMITIVE_VALUES):
        for t in KERNEL_TYPES:
            for kb in range(K_BUCKETS):
                rows[i, column_index(f"{scope}.{t}.k{kb}.{value}")] = 1.0
    return rows


_PRIMITIVES = _primitive_thetas()


# ------------------------------------------------------------------------------------------ device
@register_kind
class CalibratedDevice(Device):
    """A device fitted by :func:`calibrate`: ``intercept_ms`` per network plus ``theta`` per feature;
    whole-model latencies are at least ``floor_ms`` (and :data:`MIN_FLOOR_MS`)."""

    kind = "calibrated"
    whole_graph = True          # the ``live`` features need folding over the whole architecture

    def __init__(self, name: str, intercept_ms: float, theta: np.ndarray, fusion=DEFAULT_FUSION,
                 description: str = "", space: str = "", measurements: int = 0, floor_ms: float = MIN_FLOOR_MS):
        super().__init__(name, fusion, description)
        self.intercept_ms = float(intercept_ms)
        self.theta = np.asarray(theta, float)
        self.space = space
        self.measurements = int(measurements)
        if not np.isfinite(floor_ms):
            raise ValueError(f"floor_ms must be a finite number of ms, got {floor_ms!r}")
        self.floor_ms = max(float(floor_ms), MIN_FLOOR_MS)

    @classmethod
    def from_dict(cls, d: dict) -> "CalibratedDevice":
        where = f"calibrated device {d.get('name', '?')!r}"
        _check_version(d, where)
        for field in ("name", "intercept_ms", "theta"):
            if field not in d:
                raise DeviceError(f"{where} has no {field!r}; recalibrate it with `zeroshot calibrate`")
        theta = _dense_theta(d["theta"], where, signed=True)        # its errors name ``where`` already
        try:
            return cls(d["name"], float(d["intercept_ms"]), theta,
                       d.get("fusion", DEFAULT_FUSION), d.get("description", ""), d.get("space", ""),
                       d.get("measurements", 0), float(d.get("floor_ms", MIN_FLOOR_MS)))
        except (TypeError, ValueError) as e:          # TypeError: a field of the wrong JSON type (null, list)
            raise DeviceError(f"{where}: {e}") from None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "description": self.description,
                "fusion": list(self.fusion), "feature_version": FEATURE_VERSION, "space": self.space,
                "measurements": self.measurements, "floor_ms": _round(self.floor_ms),
                "intercept_ms": _round(self.intercept_ms),
                "theta": _sparse_theta(self.theta)}

    def kernel_latency_ms(self, kt: KernelTable, live: np.ndarray | None = None) -> np.ndarray:
        """Per-kernel latency; ``live`` marks the kernels left after folding (default: all)."""
        cols, vals = kernel_slots(kt, np.ones(len(kt.cols["type"]), bool) if live is None else live)
        return (self.theta[cols] * vals).sum(1)

    @property
    def model_overhead_ms(self) -> float:
        return self.intercept_ms

    def latency_ms(self, table: OpTable) -> np.ndarray:
        """Whole-model latency, floored at :attr:`floor_ms` (the linear model may extrapolate below 0)."""
        kt = decompose(table, self.fusion)
        per_kernel = self.kernel_latency_ms(kt, live_kernels(table, kt))
        raw = kt.sum_per_arch(per_kernel) + self.model_overhead_ms
        return np.maximum(raw, self.floor_ms)

    def for_space(self, space_name: str) -> "CalibratedDevice":
        """The device itself; a device calibrated on another space refuses (its parameters were fitted to
        that space's measurements, with that space's source devices as the prior)."""
        if self.space and space_name != self.space:
            raise DeviceError(f"device {self.name!r} was calibrated on {self.space} architectures, not "
                              f"{space_name}; calibrate one with `zeroshot calibrate {space_name} ...`")
        return self

    def predict(self, space, archs) -> np.ndarray:
        """Latency (ms) of architectures of ``space`` given as encodings or codes."""
        return self.latency_ms(to_table([space.to_ir(a) for a in archs]))

    def summary(self) -> str:
        return (f"calibrated from {self.measurements} {self.space or 'whole-model'} measurements, "
                f"{np.count_nonzero(self.theta)} cost parameters")


def latency_floor(latency_ms) -> float:
    """The least whole-model latency a device calibrated on ``latency_ms`` predicts (see
    :data:`FLOOR_FRACTION`)."""
    return max(FLOOR_FRACTION * float(np.min(latency_ms)), MIN_FLOOR_MS)


def calibrate(space, archs, latency_ms, name: str = "calibrated", prior: Prior | None = None,
              **hyper) -> CalibratedDevice:
    """A :class:`CalibratedDevice` from measured architectures of ``space`` (encodings or codes)."""
    prior = (prior or load_prior()).subset(space.name)
    intercept, theta = calibrate_features(arch_features(space, archs), latency_ms, prior, **hyper)
    return CalibratedDevice(name, intercept, theta, space=space.name, measurements=len(latency_ms),
                            floor_ms=latency_floor(latency_ms),
                            description=f"fitted to {len(latency_ms)} whole-model latencies on {space.name} "
                                        f"(sources: {len(prior.labels)} devices)")


def build_prior(datasets, path=PRIOR_PATH) -> Prior:
    """Fit every source device of ``datasets`` (``(space, archs, {device: latencies})`` triples) and write
    the prior file."""
    labels, intercepts, thetas = [], [], []
    for space, archs, devices in datasets:
        features = arch_features(space, archs)
        for device, latency in devices.items():
            b, th = fit_source(features, latency)
            labels.append(f"{space.name}/{device}")
            intercepts.append(b)
            thetas.append(th)
    prior = Prior(labels, np.array(intercepts), np.array(thetas))
    Path(path).write_text(json.dumps(prior.to_dict()) + "\n")
    return prior


# ------------------------------------------------------------------------------------------ helpers
def _normalised_design(features: sparse.spmatrix):
    """The columns some architecture has, their means, and ``[1, features / mean]`` on those columns."""
    active = np.flatnonzero(np.asarray(abs(features).sum(0)).ravel() > 0)
    dense = features[:, active].toarray()
    scale = dense.mean(0)
    return active, scale, np.column_stack([np.ones(features.shape[0]), dense / scale])


def _round(x: float) -> float:
    return float(f"{x:.6g}")


def _sparse_theta(theta: np.ndarray) -> dict:
    return {column_name(i): _round(theta[i]) for i in np.flatnonzero(theta)}


def _dense_theta(d: dict, where: str, signed: bool = False) -> np.ndarray:
    """Parameters from their named form; non-negative unless ``signed`` (a calibrated device's may not be)."""
    if not isinstance(d, dict):
        raise DeviceError(f"{where}: 'theta' must map feature names to numbers, got {type(d).__name__}")
    theta = np.zeros(N_COLS)
    for name, value in d.items():
        try:
            theta[column_index(name)] = float(value)
        except KeyError as e:
            raise DeviceError(f"{where}: {e.args[0]}") from None
        except (TypeError, ValueError):
            raise DeviceError(f"{where}: cost parameter {name!r} must be a number, got {value!r}") from None
    if not np.all(np.isfinite(theta)):
        raise DeviceError(f"{where}: cost parameters must be finite numbers")
    if not signed and np.any(theta < 0):
        raise DeviceError(f"{where}: source cost parameters must be non-negative; rebuild the prior with "
                          f"`python -m zeroshot.estimator.calibrate`")
    return theta


def _check_version(d: dict, where: str) -> None:
    if d.get("feature_version") != FEATURE_VERSION:
        raise DeviceError(f"{where} was fitted with feature version {d.get('feature_version')!r}, this "
                          f"zeroshot uses {FEATURE_VERSION}; recalibrate it with `zeroshot calibrate`")


# ------------------------------------------------------------------------------------------ data
ARCH_COLUMNS = ("arch", "arch_str", "op_names")      # accepted names of the encoding column


def read_latency_csv(path, space) -> tuple[list[str], dict[str, list[str]]]:
    """Canonical encodings and the other columns (raw text) of a CSV of measured architectures.

    The encoding column is the first of :data:`ARCH_COLUMNS` present; index columns (``index``, ``id``,
    ``*idx``) are left out.  Raises ``ValueError`` naming the row of a bad encoding.
    """
    import csv

    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        arch_col = next((c for c in ARCH_COLUMNS if c in header), None)
        if arch_col is None:
            raise ValueError(f"{path}: no architecture column; expected one of {', '.join(ARCH_COLUMNS)}, "
                             f"got columns {', '.join(header) or '(none)'}")
        value_cols = [c for c in header if c not in ARCH_COLUMNS and not _is_index(c)]
        texts, raw = [], {c: [] for c in value_cols}
        for row_no, row in enumerate(reader, start=2):
            try:
                texts.append(space.format(space.parse(row[arch_col] or "")))
            except ValueError as e:
                raise type(e)(f"{path} row {row_no}: {e}") from None
            for c in value_cols:
                raw[c].append(row[c])
    return texts, raw


def numeric_columns(raw: dict[str, list[str]]) -> list[str]:
    """Names of the columns of :func:`read_latency_csv` where some value is a number."""
    return [c for c, v in raw.items() if any(_is_float(x) for x in v)]


def latency_column(raw: dict[str, list[str]], column: str, path) -> np.ndarray:
    """Column ``column`` as positive milliseconds; ``ValueError`` names the first bad row."""
    out = np.empty(len(raw[column]))
    for i, x in enumerate(raw[column]):
        value = float(x) if _is_float(x) else np.nan
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"{path} row {i + 2}: column {column!r} must hold a positive latency in ms, "
                             f"got {x!r}")
        out[i] = value
    return out


def _is_float(x) -> bool:
    try:
        float(x)
    except (TypeError, ValueError):
        return False
    return True


def _is_index(column: str) -> bool:
    low = column.lower()
    return low in ("index", "id", "") or low.endswith("idx")


def shared_datasets(names=("nb201", "fbnet")):
    """``(space, encodings, {device: latencies})`` of the shared measurements (``hw/<space>_latency.csv``)
    that are present."""
    from zeroshot.spaces import get_space
    from zeroshot.spaces.shared_data import shared_data

    out = []
    for name in names:
        path = shared_data(f"hw/{name}_latency.csv")
        if path is not None:
            space = get_space(name)
            texts, raw = read_latency_csv(path, space)
            out.append((space, texts, {c: latency_column(raw, c, path) for c in raw if c.endswith("_ms")}))
    return out


if __name__ == "__main__":
    data = shared_datasets()
    if not data:
        raise SystemExit("../shared/data/hw/*_latency.csv not found (set ZEROSHOT_SHARED_DATA)")
    built = build_prior(data)
    print(f"wrote {PRIOR_PATH} with {len(built.labels)} source devices")
