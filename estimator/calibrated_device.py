"""Few-shot device calibration from whole-model latencies: :func:`calibrate` and the ``calibrated`` device kind.

The flow: measured architectures -> their kernel features (:mod:`zeroshot.estimator.calibration_features`)
-> the posterior mean of the parameters under a prior made of source devices
(:mod:`zeroshot.estimator.calibration_fit`, :mod:`zeroshot.estimator.calibration_prior`) -> a
:class:`CalibratedDevice`, saved as JSON and usable wherever a device is (``--device DEVICE.json`` on the
command line).  Measurements come as arrays, or from a CSV (:mod:`zeroshot.estimator.latency_csv`).

The parameters may be negative (they fit whole-model latency; a per-kernel share of it is not a latency on
its own).  So a calibrated device's whole-model predictions are floored at :data:`FLOOR_FRACTION` of its
fastest calibration measurement (never below :data:`MIN_FLOOR_MS`): a network far faster than every
measured one is an extrapolation of the linear model, and no network runs in zero or negative time.

Each prediction has an interval (:meth:`CalibratedDevice.interval_ms`): from the posterior of the
parameters (:mod:`zeroshot.estimator.calibration_posterior`) and the measurement noise the fit estimated,
Student-t with the fit's residual degrees of freedom (device files from before that: Gaussian),
where a measurement falls with probability ``level`` if the model's assumptions hold (their observed
coverage: benchmarks/results/calibration_uncertainty.md).

Example
-------
>>> import numpy as np
>>> from zeroshot.spaces import get_space
>>> from zeroshot.estimator.calibration_features import arch_features, predict_features
>>> from zeroshot.estimator.calibration_prior import load_prior
>>> space = get_space("nb201")
>>> archs = space.sample(12, seed=0)
>>> latency = predict_features(arch_features(space, archs), *load_prior().source(0))
>>> device = calibrate(archs, latency, space="nb201", name="twin")
>>> bool(np.allclose(device.predict(space, archs), latency, rtol=0.05))
True
>>> lo, hi = device.predict_interval(space, archs[:3], level=0.8)
>>> bool(np.all(lo <= device.predict(space, archs[:3])) and np.all(hi >= lo))
True
>>> calibrate(archs[:2], latency[:2], space="nb201")
Traceback (most recent call last):
...
zeroshot.errors.ParameterError: archs must be at least 3 measured architectures (10 or more recommended), got 2
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from zeroshot.errors import DeviceError, ParameterError
from zeroshot.spaces import SearchSpace, get_space
from zeroshot.spaces.ir import Arch, OpTable

from .calibration_features import (FEATURE_VERSION, arch_features, arch_table, check_version, dense_theta,
                                   kernel_slots, predict_features, round_param, sparse_theta, table_features)
from .calibration_fit import fit_posterior
from .calibration_posterior import Posterior
from .calibration_prior import Prior, load_prior
from .devices import Device, register_kind
from .folding import live_kernels
from .kernel_table import DEFAULT_FUSION, KernelTable

__all__ = ["FLOOR_FRACTION", "MIN_FLOOR_MS", "MIN_MEASUREMENTS", "CalibratedDevice", "calibrate",
           "latency_floor"]

#: a calibrated device predicts at least this share of its fastest calibration measurement: the fastest
#: networks of the shared devices run at 0.23-0.75 of their space's mean, so the floor catches predictions
#: the linear model extrapolates to near or below zero (and NB201 cells whose output is constant, folded
#: away to ~0.003 ms on pixel3 / raspi4, which stay below every other network, tied)
FLOOR_FRACTION = 0.1
#: the floor of a device file without ``floor_ms`` (calibrated before the floor existed)
MIN_FLOOR_MS = 1e-3
#: the fewest measured architectures :func:`calibrate` takes (10 or more recommended)
MIN_MEASUREMENTS = 3


@register_kind
class CalibratedDevice(Device):
    """A device fitted by :func:`calibrate`: ``intercept_ms`` per network plus ``theta`` per feature;
    whole-model latencies are at least ``floor_ms`` (and :data:`MIN_FLOOR_MS`); ``posterior`` (None in
    files calibrated before intervals existed) gives each prediction's interval."""

    kind = "calibrated"
    kernel_bound = "fitted"     # a kernel's share of a linear fit to whole-model latencies (may be negative)
    whole_graph = True          # the ``live`` features need folding over the whole architecture

    def __init__(self, name: str, intercept_ms: float, theta: np.ndarray, fusion=DEFAULT_FUSION,
                 description: str = "", space: str = "", measurements: int = 0, floor_ms: float = MIN_FLOOR_MS,
                 posterior: Posterior | None = None):
        super().__init__(name, fusion, description)
        self.posterior = posterior
        self.intercept_ms = float(intercept_ms)
        self.theta = np.asarray(theta, float)
        self.space = space
        self.measurements = int(measurements)
        if not np.isfinite(floor_ms):
            raise ParameterError("floor_ms", "a finite number of ms", floor_ms)
        self.floor_ms = max(float(floor_ms), MIN_FLOOR_MS)

    @classmethod
    def from_dict(cls, d: dict) -> "CalibratedDevice":
        where = f"calibrated device {d.get('name', '?')!r}"
        check_version(d, where)
        for field in ("name", "intercept_ms", "theta"):
            if field not in d:
                raise DeviceError(f"{where} has no {field!r}; recalibrate it with `zeroshot calibrate`")
        theta = dense_theta(d["theta"], where, signed=True)        # its errors name ``where`` already
        posterior = Posterior.from_dict(d["posterior"], where) if d.get("posterior") is not None else None
        try:
            return cls(d["name"], float(d["intercept_ms"]), theta,
                       d.get("fusion", DEFAULT_FUSION), d.get("description", ""), d.get("space", ""),
                       d.get("measurements", 0), float(d.get("floor_ms", MIN_FLOOR_MS)), posterior)
        except (TypeError, ValueError) as e:          # TypeError: a field of the wrong JSON type (null, list)
            raise DeviceError(f"{where}: {e}") from None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "description": self.description,
                "fusion": list(self.fusion), "feature_version": FEATURE_VERSION, "space": self.space,
                "measurements": self.measurements, "floor_ms": round_param(self.floor_ms),
                "intercept_ms": round_param(self.intercept_ms),
                "theta": sparse_theta(self.theta)} | (
                    {"posterior": self.posterior.to_dict()} if self.posterior is not None else {})

    def kernel_latency_ms(self, kt: KernelTable, live: np.ndarray | None = None) -> np.ndarray:
        """Per-kernel latency; ``live`` marks the kernels left after folding (default: all)."""
        cols, vals = kernel_slots(kt, np.ones(len(kt.cols["type"]), bool) if live is None else live)
        return (self.theta[cols] * vals).sum(1)

    @property
    def model_overhead_ms(self) -> float:
        return self.intercept_ms

    def graph_kernel_ms(self, table: OpTable, kt: KernelTable) -> np.ndarray:
        """Per-kernel latency with the kernels folded away in ``table``'s graphs marked dead."""
        return self.kernel_latency_ms(kt, live_kernels(table, kt))

    def latency_ms(self, table: OpTable) -> np.ndarray:
        """Whole-model latency, floored at :attr:`floor_ms` (the linear model may extrapolate below 0)."""
        return np.maximum(super().latency_ms(table), self.floor_ms)

    def model_terms_ms(self, kernels_ms: float) -> dict[str, float]:
        """The intercept (``overhead``) and, where the floor lifts the prediction, the lift (``floor``)."""
        terms = super().model_terms_ms(kernels_ms)
        unfloored = kernels_ms + self.model_overhead_ms
        if unfloored < self.floor_ms:
            terms["floor"] = self.floor_ms - unfloored
        return terms

    def for_space(self, space_name: str) -> "CalibratedDevice":
        """The device itself; a device calibrated on another space refuses (its parameters were fitted to
        that space's measurements, with that space's source devices as the prior)."""
        if self.space and space_name != self.space:
            raise DeviceError(f"device {self.name!r} was calibrated on {self.space} architectures, not "
                              f"{space_name}; calibrate one with `zeroshot calibrate {space_name} ...`")
        return self

    def predict(self, space, archs) -> np.ndarray:
        """Latency (ms) of architectures of ``space`` (a name or a SearchSpace; None for IR only) given as
        encodings, codes or IR :class:`Arch` objects."""
        return self.latency_ms(arch_table(_resolve_space(space), archs))

    def interval_ms(self, table: OpTable, level: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
        """``(lo, hi)`` around each network's :meth:`latency_ms`: where its measured latency falls with
        probability ``level`` under the fit's assumptions; ``lo`` stays at or below the (floored) prediction,
        above :data:`MIN_FLOOR_MS`.  Raises :class:`~zeroshot.errors.DeviceError` for a device file without
        a posterior."""
        if self.posterior is None:
            raise DeviceError(f"device {self.name!r} has no posterior (calibrated before prediction intervals "
                              f"existed); recalibrate it with `zeroshot calibrate` to get intervals")
        features = table_features(table, self.fusion)
        mean = predict_features(features, self.intercept_ms, self.theta)
        lo, hi = self.posterior.interval_ms(mean, features, level)
        point = np.maximum(mean, self.floor_ms)
        return np.clip(lo, MIN_FLOOR_MS, point), np.maximum(hi, point)

    def predict_interval(self, space, archs, level: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`interval_ms` of architectures of ``space`` (as :meth:`predict`) given as encodings, codes
        or IR :class:`Arch` objects."""
        return self.interval_ms(arch_table(_resolve_space(space), archs), level)

    def summary(self) -> str:
        return (f"calibrated from {self.measurements} {self.space or 'whole-model'} measurements, "
                f"{np.count_nonzero(self.theta)} cost parameters")


def latency_floor(latency_ms) -> float:
    """The least whole-model latency a device calibrated on ``latency_ms`` predicts (see
    :data:`FLOOR_FRACTION`)."""
    return max(FLOOR_FRACTION * float(np.min(latency_ms)), MIN_FLOOR_MS)


def calibrate(archs, latency_ms, space: str | SearchSpace | None = "nb201", name: str = "calibrated",
              prior: Prior | str | Path | None = None, **hyper) -> CalibratedDevice:
    """A :class:`CalibratedDevice` fitted to the measured whole-model latencies of a few architectures.

    ``archs``: the measured architectures of ``space`` (its name, or a
    :class:`~zeroshot.spaces.SearchSpace`) as encodings (str), code vectors or IR :class:`Arch` objects, at
    least :data:`MIN_MEASUREMENTS` (10 or more recommended); with ``space=None``, IR architectures of any
    origin (users' own networks: ``zeroshot.from_torch``), fitted with every source device as the prior and
    usable on any network; ``latency_ms``: their latencies, positive
    milliseconds in the same order.  ``prior``: the source devices (a :class:`Prior` or a prior file;
    default: the shipped ones).  ``hyper``: keywords of
    :func:`~zeroshot.estimator.calibration_fit.calibrate_features`.  The device keeps the posterior of its
    parameters for prediction intervals (:meth:`CalibratedDevice.interval_ms`).  Raises
    :class:`~zeroshot.errors.ParameterError` naming the parameter that is wrong.
    """
    space = _resolve_space(space)
    archs = _resolve_archs(archs, space)
    space_name = space.name if space is not None else None
    prior = (prior if isinstance(prior, Prior) else load_prior() if prior is None else load_prior(prior))
    prior = prior.subset(space_name)
    features = arch_features(space, archs)
    distinct = len(np.unique(features.toarray(), axis=0))
    if distinct < MIN_MEASUREMENTS:
        raise ParameterError("archs", f"at least {MIN_MEASUREMENTS} distinct ones (equal architectures, or "
                             "isomorphic cells, count once)", f"{len(archs)} measurements of {distinct}")
    fit = fit_posterior(features, latency_ms, prior, **hyper)
    n = len(archs)
    return CalibratedDevice(name, fit.intercept_ms, fit.theta, space=space_name, measurements=n,
                            floor_ms=latency_floor(latency_ms), posterior=fit.posterior,
                            description=f"fitted to {n} whole-model latencies on {space_name or 'own networks'} "
                                        f"(sources: {len(prior.labels)} devices)")


def _resolve_space(space) -> SearchSpace | None:
    """A space from its name; a SearchSpace or None as given."""
    if space is None or isinstance(space, SearchSpace):
        return space
    if not isinstance(space, str):
        raise ParameterError("space", "a space name or a SearchSpace", type(space).__name__)
    return get_space(space)


def _resolve_archs(archs, space: SearchSpace | None) -> list:
    items = [archs] if isinstance(archs, (str, Arch)) else list(archs)
    kinds = (str, Arch, np.ndarray) if space is not None else (Arch,)
    bad = [type(a).__name__ for a in items if not isinstance(a, kinds)]
    if bad:
        raise ParameterError("archs", "encodings (str), code vectors or IR Arch objects" if space is not None
                             else "IR Arch objects (encodings need their space)", bad[0])
    if len(items) < MIN_MEASUREMENTS:
        raise ParameterError("archs", f"at least {MIN_MEASUREMENTS} measured architectures (10 or more "
                             "recommended)", len(items))
    return items
