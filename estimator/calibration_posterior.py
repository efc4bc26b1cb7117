"""The uncertainty of a calibrated device: the Gaussian posterior of its parameters, and intervals from it.

The few-shot fit (:mod:`zeroshot.estimator.calibration_fit`) is Bayesian linear regression: under its
Gaussian prior and Gaussian measurement noise, the parameters ``[intercept, theta]`` have a Gaussian
posterior whose mean is the calibrated device.  Its covariance (in ms^2) is kept in a compact form,
``diag(d) + sum_i s_i f_i f_i^T`` over the parameters any component touches (``s_i`` = +-1), so that the
variance of a network's latency is a few sparse products of its features.  A prediction interval adds the
measurement noise the fit estimated (a measured latency varies by that much around the model's), and is
Student-t: ``mean +- t sd``, ``t`` the two-sided ``level`` quantile with ``dof`` degrees of freedom (the fit's
residual ones, as its noise and variances were estimated from the same few measurements; wider than the
Gaussian ``z`` that a posterior without ``dof``, from a file written before it, uses).

Example
-------
>>> import numpy as np
>>> from scipy import sparse
>>> post = Posterior.build(np.array([0.0, 1.0, 0.0]), np.array([[1.0], [0.0], [0.0]]),
...                        np.zeros((3, 0)), noise_ms2=0.0)
>>> features = sparse.csr_matrix(np.array([[2.0, 0.0], [0.0, 1.0]]))     # intercept + 2 features
>>> post.variance_ms2(features)                       # 1 (intercept) + 2^2 * 1 (feature 0); feature 1: none
array([5., 1.])
>>> lo, hi = post.interval_ms(np.array([10.0, 10.0]), features, level=0.8)
>>> bool(np.all(lo < 10.0) and np.all(hi > 10.0))
True
>>> noise_only = Posterior.build(np.zeros(3), np.zeros((3, 0)), np.zeros((3, 0)), noise_ms2=1.0, dof=9)
>>> noise_only.interval_ms(np.zeros(2), features, level=0.8)[1].round(4)     # t with 9 dof, not z = 1.2816
array([1.383, 1.383])
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.special import ndtri, stdtrit

from zeroshot.errors import DeviceError, ParameterError

from .calibration_features import N_COLS, column_index, column_name, round_param

__all__ = ["INTERCEPT", "Posterior", "z_of_level"]

#: the name of the intercept among a posterior's parameters in a device file
INTERCEPT = "intercept"


def z_of_level(level: float, dof: float | None = None) -> float:
    """The quantile of a two-sided interval of coverage ``level`` (in (0, 1)): standard normal, or Student-t
    with ``dof`` degrees of freedom.

    >>> round(z_of_level(0.8), 4), round(z_of_level(0.8, dof=9), 4)
    (1.2816, 1.383)
    """
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not 0 < level < 1:
        raise ParameterError("interval", "a coverage level strictly between 0 and 1, for example 0.8", level)
    return float(ndtri(0.5 + level / 2) if dof is None else stdtrit(dof, 0.5 + level / 2))


@dataclass
class Posterior:
    """Covariance of ``[intercept, theta]`` (ms^2) restricted to ``columns`` (0: the intercept, ``j + 1``:
    feature ``j``): ``diag(diag) + factors.T @ diag(signs) @ factors``; ``noise_ms2``: measurement noise;
    ``dof``: degrees of freedom of the Student-t intervals (None: Gaussian, as in files written before it)."""

    columns: np.ndarray
    diag: np.ndarray
    factors: np.ndarray
    signs: np.ndarray
    noise_ms2: float
    dof: float | None = None

    @classmethod
    def build(cls, diag: np.ndarray, plus: np.ndarray, minus: np.ndarray, noise_ms2: float,
              dof: float | None = None) -> "Posterior":
        """The posterior ``diag(diag) + plus @ plus.T - minus @ minus.T`` (dense ``(N_COLS + 1, .)``
        factors), compressed to the parameters it touches and to orthogonal factors."""
        low = np.hstack([plus, minus])
        touched = np.flatnonzero((diag != 0) | np.any(low != 0, axis=1))
        signs = np.r_[np.ones(plus.shape[1]), -np.ones(minus.shape[1])]
        # in units of each parameter's prior sd: a MAC's cost and the intercept differ by 1e9
        unit = np.sqrt(diag[touched] + (plus[touched] ** 2).sum(1))
        unit[unit == 0] = 1.0
        q, r = np.linalg.qr(low[touched] / unit[:, None])
        lam, v = np.linalg.eigh((r * signs) @ r.T)
        keep = np.abs(lam) > 1e-12 * max(np.abs(lam).max(initial=0.0), 1e-300)
        factors = (q @ v[:, keep] * np.sqrt(np.abs(lam[keep]))).T * unit
        return cls(touched, diag[touched], factors, np.sign(lam[keep]), float(noise_ms2),
                   None if dof is None else float(dof))

    def variance_ms2(self, features: sparse.spmatrix) -> np.ndarray:
        """Variance of the modelled latency (without measurement noise) of networks with these feature
        sums (``(n, N_COLS)``), never negative."""
        x = sparse.hstack([np.ones((features.shape[0], 1)), features], format="csc")[:, self.columns]
        var = np.asarray(x.multiply(x) @ self.diag).ravel()
        if len(self.signs):
            var += (np.asarray(x @ self.factors.T) ** 2) @ self.signs
        return np.maximum(var, 0.0)

    def interval_ms(self, mean_ms: np.ndarray, features: sparse.spmatrix, level: float = 0.8):
        """``(lo, hi)``: where a measurement falls with probability ``level`` around the predicted
        ``mean_ms`` (the parameters' uncertainty plus the measurement noise; Student-t with :attr:`dof`)."""
        z = z_of_level(level, self.dof)
        sd = self.sd_ms(features)
        return mean_ms - z * sd, mean_ms + z * sd

    def sd_ms(self, features: sparse.spmatrix) -> np.ndarray:
        """Standard deviation of a measurement around the model's prediction: the parameters' uncertainty
        plus the measurement noise."""
        return np.sqrt(self.variance_ms2(features) + self.noise_ms2)

    def to_dict(self) -> dict:
        names = [INTERCEPT if c == 0 else column_name(c - 1) for c in self.columns]
        return {"noise_ms2": round_param(self.noise_ms2), "columns": names,
                "diag": [round_param(v) for v in self.diag], "signs": [int(s) for s in self.signs],
                "factors": [[round_param(v) for v in f] for f in self.factors]} | (
                    {} if self.dof is None else {"dof": self.dof})

    @classmethod
    def from_dict(cls, d, where: str) -> "Posterior":
        """The posterior of a device file; raises :class:`~zeroshot.errors.DeviceError` naming ``where``."""
        try:
            columns = np.array([0 if n == INTERCEPT else column_index(n) + 1 for n in d["columns"]], np.int64)
            diag = np.asarray(d["diag"], float)
            factors = np.asarray(d["factors"], float).reshape(-1, len(columns))
            signs = np.asarray(d["signs"], float)
            noise = float(d["noise_ms2"])
            dof = None if d.get("dof") is None else float(d["dof"])
        except KeyError as e:           # a missing field, or column_index's word for an unknown feature
            raise DeviceError(f"{where}: malformed posterior ({e.args[0]}); recalibrate it with "
                              f"`zeroshot calibrate`") from None
        except (TypeError, ValueError) as e:
            raise DeviceError(f"{where}: malformed posterior ({e}); recalibrate it with `zeroshot calibrate`") \
                from None
        if diag.shape != columns.shape or len(signs) != len(factors) or not np.all(np.isfinite(diag)) \
                or not np.all(np.isfinite(factors)) or not np.isfinite(noise) or noise < 0 \
                or (len(columns) and columns.max() > N_COLS) or not (dof is None or 0 < dof < np.inf):
            raise DeviceError(f"{where}: inconsistent posterior (columns, diag, factors, signs, noise_ms2, dof); "
                              f"recalibrate it with `zeroshot calibrate`")
        return cls(columns, diag, factors, signs, noise, dof)
