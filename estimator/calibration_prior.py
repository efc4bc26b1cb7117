"""The calibration prior: source devices fitted on whole search spaces, shipped in ``calibration_prior.json``.

A source device is the calibrated model (:mod:`zeroshot.estimator.calibration_features`) fitted by
non-negative least squares to the latencies one device gives on many architectures of a space
(:func:`fit_source`), normalised to a mean latency of 1.  The sources span hardware kinds
(:func:`device_kind`): every device of the shared measurements
(:func:`zeroshot.estimator.latency_csv.shared_datasets`: GPUs, CPUs, phones, a Raspberry Pi) and the
analytic accelerators of :func:`npu_sources` (the built-in ``npu`` profiles and :data:`N_SAMPLED_NPU`
devices sampled around and between them, :mod:`zeroshot.estimator.synthetic_devices`), costed on the same
architectures.  :func:`build_prior` fits them all and writes the file; run
``python -m zeroshot.estimator.calibration_prior [--measured FILE ...]`` to rebuild it (``--measured``: latency
CSVs of further devices, e.g. this machine's CPU from ``benchmarks/cpu_sources.py``).

Example
-------
>>> prior = load_prior()
>>> nb201 = prior.subset("nb201")
>>> all(label.startswith("nb201/") for label in nb201.labels) and len(nb201.labels) >= 2
True
>>> intercept, theta = nb201.source(0)
>>> theta.shape == (N_COLS,) and bool((theta >= 0).all())
True
>>> device_kind("nb201/pixel3_ms"), device_kind("fbnet/npu-prior-03"), device_kind("nb201/npu-edgetpu-like")
('phone', 'npu', 'npu')
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.optimize import nnls

from zeroshot.errors import DeviceError, Error
from zeroshot.spaces import get_space

from .calibration_features import (FEATURE_VERSION, N_COLS, arch_table, check_version, dense_theta,
                                   round_param, sparse_theta, table_features)
from .kernel_table import DEFAULT_FUSION

__all__ = ["KINDS", "LOCAL_PREFIX", "N_SAMPLED_NPU", "PRIOR_PATH", "Prior", "build_prior", "device_kind",
           "fit_source", "load_prior", "measured_datasets", "npu_sources"]

PRIOR_PATH = Path(__file__).with_name("calibration_prior.json")
#: sampled accelerators among the prior's sources (stream ``prior`` of
#: :func:`~zeroshot.estimator.synthetic_devices.sample_npu_devices`), beside the built-in npu profiles
N_SAMPLED_NPU = 24
#: name prefix of the devices measured on the project's machine (benchmarks/cpu_sources.py)
LOCAL_PREFIX = "local_"
#: hardware kind -> substrings of the device names of that kind (the shared measurements' column names)
KINDS = {"gpu": ("1080ti", "2080ti", "titanx"), "cpu": ("gold", "silver", "cpu"),
         "phone": ("pixel", "samsung"), "pi": ("raspi",), "npu": ("npu-",)}


def device_kind(label: str) -> str:
    """The hardware kind (a key of :data:`KINDS`, or ``other``) of a source label ``space/device``."""
    device = label.split("/")[-1].lower()
    if device.startswith("npu-"):
        return "npu"
    return next((kind for kind, keys in KINDS.items() if any(k in device for k in keys)), "other")


def npu_sources(n_sampled: int = N_SAMPLED_NPU) -> list:
    """The analytic accelerators of the prior: the built-in npu profiles, then ``n_sampled`` of the sampled
    family; each named ``npu-...`` (so :func:`device_kind` says ``npu``)."""
    from .devices import load_device
    from .npu import NpuDevice
    from .synthetic_devices import ANCHORS, sample_npu_devices

    anchors = [NpuDevice.from_dict({**load_device(a).to_dict(), "name": f"npu-{a}"}) for a in ANCHORS]
    return anchors + sample_npu_devices(n_sampled, stream="prior")


@dataclass
class Prior:
    """Source devices: ``labels[i]`` (space/device), ``intercepts[i]``, rows of ``thetas`` (normalised)."""

    labels: list[str]
    intercepts: np.ndarray
    thetas: np.ndarray

    def source(self, i: int) -> tuple[float, np.ndarray]:
        """``(intercept, theta)`` of source ``i``."""
        return float(self.intercepts[i]), self.thetas[i]

    def subset(self, space_name: str | None) -> "Prior":
        """The sources measured on ``space_name``; all of them when there are none."""
        keep = [i for i, lab in enumerate(self.labels) if lab.split("/")[0] == space_name] or \
            list(range(len(self.labels)))
        return self.take(keep)

    def without_kinds(self, kinds) -> "Prior":
        """The sources of every hardware kind (:func:`device_kind`) but ``kinds``."""
        return self.take([i for i, lab in enumerate(self.labels) if device_kind(lab) not in set(kinds)])

    def without_local(self) -> "Prior":
        """The sources but those measured on the project's own machine (devices named :data:`LOCAL_PREFIX`...:
        a benchmark on that machine must not find it in the prior)."""
        return self.take([i for i, lab in enumerate(self.labels)
                          if not lab.split("/")[-1].startswith(LOCAL_PREFIX)])

    def take(self, keep) -> "Prior":
        """The sources at indices ``keep``."""
        keep = list(keep)
        return Prior([self.labels[i] for i in keep], self.intercepts[keep], self.thetas[keep])

    def to_dict(self) -> dict:
        return {"feature_version": FEATURE_VERSION, "fusion": list(DEFAULT_FUSION),
                "sources": [{"label": lab, "intercept": round_param(b), "theta": sparse_theta(th)}
                            for lab, b, th in zip(self.labels, self.intercepts, self.thetas)]}

    @classmethod
    def from_dict(cls, d: dict, where: str = "prior") -> "Prior":
        check_version(d, where)
        src = d.get("sources") or []
        if not src:
            raise DeviceError(f"{where} has no sources")
        return cls([s["label"] for s in src], np.array([float(s["intercept"]) for s in src]),
                   np.array([dense_theta(s["theta"], where) for s in src]))


def load_prior(path=PRIOR_PATH) -> Prior:
    """The source devices shipped with zeroshot (or another prior file)."""
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DeviceError(f"cannot read calibration prior {path}: {e}; rebuild it with "
                          f"`python -m zeroshot.estimator.calibration_prior`") from None
    return Prior.from_dict(d, str(path))


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


def _normalised_design(features: sparse.spmatrix):
    """The columns some architecture has, their means, and ``[1, features / mean]`` on those columns."""
    active = np.flatnonzero(np.asarray(abs(features).sum(0)).ravel() > 0)
    dense = features[:, active].toarray()
    scale = dense.mean(0)
    return active, scale, np.column_stack([np.ones(features.shape[0]), dense / scale])


def build_prior(datasets, path=PRIOR_PATH, npu=None, measured=()) -> Prior:
    """Fit every source device of ``datasets`` (``(space, archs, {device: latencies})`` triples) and the
    analytic devices ``npu`` (default :func:`npu_sources`; ``()``: none) on the same architectures, then the
    devices of ``measured`` (triples too, e.g. this machine measured on a few hundred architectures: no
    analytic device is costed on them), and write the prior file (``path=None``: do not write)."""
    npu = npu_sources() if npu is None else npu
    labels, intercepts, thetas = [], [], []
    for (space, archs, devices), costed in [(d, npu) for d in datasets] + [(d, ()) for d in measured]:
        table = arch_table(space, archs)
        features = table_features(table)
        latencies = {**devices, **{d.name: d.latency_ms(table) for d in costed}}
        for device, latency in latencies.items():
            b, th = fit_source(features, latency)
            labels.append(f"{space.name}/{device}")
            intercepts.append(b)
            thetas.append(th)
    prior = Prior(labels, np.array(intercepts), np.array(thetas))
    if path is not None:
        Path(path).write_text(json.dumps(prior.to_dict()) + "\n")
    return prior


def measured_datasets(paths) -> list:
    """:func:`~zeroshot.estimator.latency_csv.latency_dataset` of latency CSVs named ``..._<space>.csv`` (e.g.
    ``benchmarks/results/cpu_sources_fbnet.csv``)."""

    from .latency_csv import latency_dataset

    return [latency_dataset(path, get_space(Path(path).stem.rsplit("_", 1)[-1])) for path in paths]


def main(argv=None) -> None:
    """Rebuild :data:`PRIOR_PATH` from the shared measurements (``../shared/data/hw/*_latency.csv``) and the
    ``--measured`` CSVs."""

    from .latency_csv import shared_datasets

    p = argparse.ArgumentParser(description="rebuild the calibration prior")
    p.add_argument("--measured", nargs="*", default=[],
                   help="latency CSVs of other devices, named ..._<space>.csv (benchmarks/cpu_sources.py)")
    args = p.parse_args(argv)
    try:
        measured = measured_datasets(args.measured)
    except Error as e:
        p.exit(2, f"calibration_prior: error: {e}\n")
    data = shared_datasets()
    if not data:
        raise SystemExit("../shared/data/hw/*_latency.csv not found (set ZEROSHOT_SHARED_DATA)")
    built = build_prior(data, measured=measured)
    print(f"wrote {PRIOR_PATH} with {len(built.labels)} source devices")


if __name__ == "__main__":
    main()
