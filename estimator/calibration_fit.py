"""The few-shot Bayesian fit of a device's parameters from whole-model latencies of a few architectures.

Calibration from a handful of measured architectures uses the *source devices* of the prior
(:mod:`zeroshot.estimator.calibration_prior`), each scaled to a mean latency of 1 on the measured
architectures.  The target's parameters ``[intercept, theta]`` (of the features of
:mod:`zeroshot.estimator.calibration_features`, normalised the same way) get a Gaussian prior (empirical
Bayes): its mean is a weighted mean of the sources' (a source whose predictions line up with the
measurements weighs more), its covariance a sum of components with the variances of
:data:`PRIOR_VARIANCES` (``local``: see below):

- ``sources``: the sources' deviations from their mean (any combination of the source devices, negative
  weights included, with the spread the sources have);
- ``scale`` and ``intercept``: the mean device scaled, a per-network overhead;
- ``primitives``: device-independent directions (kernel count, i.e. a fixed cost per kernel launch; total
  ops, MACs, elements moved), for a device unlike every source;
- ``local``: every parameter on its own, with the spread of the sources' values of it, so that with more
  measurements the fit leaves the span of the sources.

The measurements are latency (normalised by their mean) plus Gaussian noise; the noise variance and the
``local`` variance are picked by marginal likelihood from :data:`NOISE_GRID` and :data:`LOCAL_GRID`; one
robust round inflates the noise of measurements that sit far from their leave-one-out prediction.  The
calibrated parameters are the posterior mean (closed form, one ``k x k`` solve); :func:`fit_posterior` also
gives the posterior covariance (:class:`~zeroshot.estimator.calibration_posterior.Posterior`), from which a
calibrated device draws prediction intervals.  As the noise and ``local`` variances are point estimates from
the k measurements themselves, the intervals are Student-t with the fit's residual degrees of freedom (k less
its effective parameters, ``trace(noise (covariance of the measurements)^-1)``) plus :data:`PRIOR_DOF`: few
where the fit nearly interpolates the measurements, k where they are mostly noise.  This changes no point
prediction.  The parameters may be negative: they fit whole-model latency, and a per-kernel share of it is
not a latency on its own (hence the floor of :class:`~zeroshot.estimator.calibrated_device.CalibratedDevice`).

Example
-------
>>> from zeroshot.spaces import get_space
>>> from zeroshot.estimator.calibration_features import arch_features, predict_features
>>> from zeroshot.estimator.calibration_prior import load_prior
>>> space = get_space("nb201")
>>> features = arch_features(space, space.sample(12, seed=0))
>>> prior = load_prior().subset("nb201")
>>> latency = predict_features(features, *prior.source(0)) * 3.0      # a source device, 3x slower
>>> intercept, theta = calibrate_features(features, latency, prior)
>>> bool(np.allclose(predict_features(features, intercept, theta), latency, rtol=0.05))
True
>>> fit = fit_posterior(features, latency, prior)
>>> bool(fit.intercept_ms == intercept and (fit.posterior.variance_ms2(features) >= 0).all())
True
>>> bool(PRIOR_DOF < fit.posterior.dof <= 12 + PRIOR_DOF)     # Student-t intervals: residual dof + prior's
True
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from zeroshot.errors import ParameterError, UnknownNameError

from .calibration_features import K_BUCKETS, N_COLS, SCOPES, column_index
from .calibration_posterior import Posterior
from .calibration_prior import Prior
from .kernel_table import KERNEL_TYPES

__all__ = ["LOCAL_GRID", "MAX_LATENCY_MS", "NOISE_GRID", "PRIOR_DOF", "PRIOR_VARIANCES", "ROBUST_Z", "SIMILARITY", "Fit",
           "calibrate_features", "fit_posterior"]

#: the longest whole-model latency a calibration takes: anything longer is a unit mistake (hours)
MAX_LATENCY_MS = 1e7
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
PRIMITIVE_VALUES = ("n", "ops", "macs", "mem")
#: degrees of freedom of the intervals beyond the fit's residual ones: one pseudo-measurement of the noise
#: scale from the prior (chosen among 0, 1 and a plain k - 1 on the development level of
#: benchmarks/calibration_uncertainty.py's protocol; its results file says how blind to the held-out rows)
PRIOR_DOF = 1.0


@dataclass
class Fit:
    """A calibration: the posterior mean ``intercept_ms`` and ``theta``, and the posterior around them."""

    intercept_ms: float
    theta: np.ndarray
    posterior: Posterior | None


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
    fit = fit_posterior(features, latency_ms, prior, variances, noise, robust_z, similarity, covariance=False)
    return fit.intercept_ms, fit.theta


def fit_posterior(features: sparse.spmatrix, latency_ms: np.ndarray, prior: Prior, variances: dict | None = None,
                  noise: float | None = None, robust_z: float = ROBUST_Z, similarity: float = SIMILARITY,
                  covariance: bool = True) -> Fit:
    """The :class:`Fit` of :func:`calibrate_features` (same arguments), with the posterior covariance of the
    parameters and the measurement noise (``covariance=False``: None, saving its cost)."""
    y = _checked_latency(features, latency_ms)
    var = _checked_variances(variances)
    ybar = y.mean()
    mean, comps = _prior_components(features, prior, y / ybar, similarity)
    a = sparse.hstack([np.ones((len(y), 1)), features], format="csr")
    resid = y / ybar - a @ mean
    seen = {c: (a.multiply(u.d).tocsr() if isinstance(u, Diagonal) else a @ u) for c, u in comps.items()}
    grams = {c: _gram(seen[c]) for c in comps}
    fixed = sum(var[c] * grams[c] for c in comps if c != "local")
    var["local"], noise = _most_likely(fixed, grams["local"], resid, var.get("local"), noise)
    gram = fixed + var["local"] * grams["local"]
    noises = _robust_noise(gram, resid, np.full(len(y), float(noise)), robust_z)
    alpha = np.linalg.solve(gram + np.diag(noises), resid)
    beta = mean.copy()
    for c, u in comps.items():
        w = np.asarray(seen[c].T @ alpha).ravel()
        beta += var[c] * (u.d * w if isinstance(u, Diagonal) else u @ w)
    post = _posterior(comps, seen, var, gram, noises, noise, ybar) if covariance else None
    return Fit(float(beta[0]) * ybar, beta[1:] * ybar, post)


def _posterior(comps: dict, seen: dict, var: dict, gram: np.ndarray, noises: np.ndarray, noise: float,
               ybar: float) -> Posterior:
    """The posterior covariance ``diag(diag) + plus plus^T - minus minus^T``: the prior's (``local`` on the
    diagonal, the other components low rank) less what the measurements (covariance ``gram`` plus their
    ``noises``) explain; in ms^2 (the fit's normalised units times ``ybar`` squared), with the measurement
    ``noise`` and the intervals' degrees of freedom (residual ones plus :data:`PRIOR_DOF`)."""
    diag = var["local"] * comps["local"].d ** 2
    plus = np.hstack([np.sqrt(var[c]) * np.asarray(u) for c, u in comps.items() if not isinstance(u, Diagonal)])
    cross = sum(var[c] * (u.d[:, None] * seen[c].T.toarray() if isinstance(u, Diagonal) else u @ seen[c].T)
                for c, u in comps.items())                  # prior covariance of parameters and measurements
    inv = np.linalg.inv(gram + np.diag(noises))
    minus = cross @ np.linalg.cholesky(inv)
    dof = PRIOR_DOF + float(noises @ np.diag(inv))          # k less the fit's effective parameters, plus prior
    return Posterior.build(diag * ybar ** 2, plus * ybar, minus * ybar, noise * ybar ** 2, dof)


def _checked_latency(features: sparse.spmatrix, latency_ms) -> np.ndarray:
    if isinstance(latency_ms, (str, bytes)):
        raise ParameterError("latency_ms", "a sequence of milliseconds, one per architecture", latency_ms)
    try:
        y = np.asarray(latency_ms, float)
    except (TypeError, ValueError):
        raise ParameterError("latency_ms", "numbers (milliseconds), one per architecture", latency_ms) from None
    if y.ndim != 1 or features.shape[0] != len(y):
        raise ParameterError("latency_ms", f"one latency per architecture ({features.shape[0]})",
                             len(y) if y.ndim == 1 else f"shape {y.shape}")
    if len(y) < 2:
        raise ParameterError("latency_ms", "the latencies of at least 2 architectures", len(y))
    bad = ~np.isfinite(y) | (y <= 0) | (y > MAX_LATENCY_MS)
    if bad.any():
        raise ParameterError("latency_ms", f"positive milliseconds up to {MAX_LATENCY_MS:.0e} (check the unit)",
                             float(y[bad][0]))
    if np.ptp(y) == 0:
        raise ParameterError("latency_ms", "different across the architectures (a fit ranks them)",
                             f"{len(y)} times {y[0]:g}")
    return y


def _checked_variances(variances: dict | None) -> dict:
    """:data:`PRIOR_VARIANCES` updated with ``variances`` (which may also fix ``local``)."""
    for name in variances or ():
        if name not in PRIOR_VARIANCES and name != "local":
            raise UnknownNameError("prior component", name, [*PRIOR_VARIANCES, "local"])
    return {**PRIOR_VARIANCES, **(variances or {})}


def _most_likely(fixed: np.ndarray, local_gram: np.ndarray, resid: np.ndarray, local: float | None,
                 noise: float | None) -> tuple[float, float]:
    """The ``(local variance, noise)`` pair of highest marginal likelihood, each from its grid unless given;
    ``fixed`` is the covariance of the other components."""
    locals_ = LOCAL_GRID if local is None else (local,)
    noises = NOISE_GRID if noise is None else (noise,)
    return max(((v, z) for v in locals_ for z in noises),
               key=lambda vz: _log_evidence(fixed + vz[0] * local_gram, resid, vz[1]))


def _robust_noise(gram: np.ndarray, resid: np.ndarray, noise: np.ndarray, robust_z: float) -> np.ndarray:
    """``noise`` inflated where a standardised leave-one-out residual exceeds ``robust_z``."""
    if np.isfinite(robust_z):
        inv = np.linalg.inv(gram + np.diag(noise))
        z = (inv @ resid) / np.sqrt(np.diag(inv))          # standardised leave-one-out residuals
        noise *= np.maximum(1.0, (z / robust_z) ** 2)
    return noise


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
    """Device-independent cost directions: kernel count (launch overhead), total ops, MACs and elements
    moved, eager and folded."""
    rows = np.zeros((len(SCOPES) * len(PRIMITIVE_VALUES), N_COLS))
    for i, (scope, value) in enumerate((s, v) for s in SCOPES for v in PRIMITIVE_VALUES):
        for t in KERNEL_TYPES:
            for kb in range(K_BUCKETS):
                rows[i, column_index(f"{scope}.{t}.k{kb}.{value}")] = 1.0
    return rows


_PRIMITIVES = _primitive_thetas()
