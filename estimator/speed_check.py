"""Speed check of a ``measured`` device: is this machine as fast now as when it was profiled?

A profile keeps, beside its regressors, :data:`REFERENCE_MODELS` of each space's calibration models with
the latency they had during the profile (``info["reference"]``).  :func:`speed_check` measures them again
now (interleaved, as ``zeroshot measure`` does) and gives the median ratio now / then: a machine whose other
cores got busier since the profile runs every network slower by about that factor, which no kernel model
fitted earlier can know (on this 2-core machine, 6.5% slower in one run with other work on the second core:
docs/estimator.md).  :meth:`SpeedCheck.rescale` returns the device with its latencies multiplied by the
ratio; ``zeroshot device check FILE [-o NOW.json]`` prints the ratio and writes that device, and
``zeroshot measure ... --check-device FILE`` times the references interleaved with the networks it measures
(the check taken in the same conditions as the measurement).

Example
-------
>>> check = SpeedCheck(np.array([1.05, 1.07, 1.06]))
>>> round(check.ratio, 2), check.drifted()
(1.06, True)
>>> SpeedCheck(np.array([0.99, 1.01])).drifted()
False
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from zeroshot.errors import DeviceError
from zeroshot.spaces import get_space, to_table

from .counts import table_counts
from .measured_device import MeasuredDevice

__all__ = ["DRIFT_WARN", "REFERENCE_MODELS", "SpeedCheck", "rebuilt", "reference_models", "references",
           "speed_check"]

#: calibration models of each space kept with their profile-time latency
REFERENCE_MODELS = 8
#: a ratio further than this from 1 is worth a warning (and a rescale)
DRIFT_WARN = 0.05


def reference_models(calibration: dict, params: np.ndarray, n: int = REFERENCE_MODELS) -> list[dict]:
    """The first ``n`` calibration models of each space as ``{"space", "arch", "params", "ms"}`` rows
    (``calibration``: the profile's record, arrays ``arch``, ``space``, ``measured_ms``; ``params``: each
    model's parameter count, which tells a rebuilt network from another).

    >>> reference_models({"arch": np.array(["a", "b", "c"]), "space": np.array(["s", "s", "t"]),
    ...                   "measured_ms": np.array([1.0, 2.0, 3.0])}, np.array([10, 20, 30]), n=1)
    [{'space': 's', 'arch': 'a', 'params': 10, 'ms': 1.0}, {'space': 't', 'arch': 'c', 'params': 30, 'ms': 3.0}]
    """
    rows, seen = [], {}
    for arch, space, p, ms in zip(calibration["arch"], calibration["space"], params, calibration["measured_ms"]):
        seen[space] = seen.get(space, 0) + 1
        if seen[space] <= n:
            rows.append({"space": str(space), "arch": str(arch), "params": int(p), "ms": float(ms)})
    return rows


def rebuilt(refs: list[dict]) -> list:
    """The reference models as IR networks, checked against their parameter counts: a space built with
    other options than the registered defaults rebuilds other networks, and raises
    :class:`~zeroshot.errors.DeviceError`."""


    archs = [get_space(r["space"]).to_ir(r["arch"]) for r in refs]
    params = table_counts(to_table(archs))["params"]
    for r, p in zip(refs, params):
        if int(p) != r["params"]:
            raise DeviceError(f"reference network {r['arch']} of space {r['space']} rebuilds with {int(p):,} "
                              f"parameters, not the {r['params']:,} it was profiled with (a space built with "
                              f"options?); speed checks need a device profiled on registered spaces as they are")
    return archs


@dataclass
class SpeedCheck:
    """Per reference model, latency now / latency during the profile."""

    ratios: np.ndarray

    @classmethod
    def of(cls, refs: list[dict], now_ms) -> "SpeedCheck":
        """The check of reference rows (``info["reference"]``) measured now at ``now_ms``.

        >>> SpeedCheck.of([{"ms": 2.0}, {"ms": 4.0}], [2.2, 4.4]).ratio
        1.1
        """
        return cls(np.asarray(now_ms, float) / np.array([r["ms"] for r in refs]))

    @property
    def ratio(self) -> float:
        """The median ratio: how much slower (> 1) or faster this machine runs now."""
        return float(np.median(self.ratios))

    def drifted(self, tol: float = DRIFT_WARN) -> bool:
        """Whether the ratio is further than ``tol`` from 1."""
        return abs(self.ratio - 1.0) > tol

    def warning(self, source: str) -> str:
        """What a drifted check means for the device file ``source``, in one line.

        >>> print(SpeedCheck(np.array([1.08])).warning("local.json"))  # doctest: +NORMALIZE_WHITESPACE
        this machine runs 8% slower than when local.json was profiled: its estimates are off by about as much
        (zeroshot device check local.json -o NOW.json writes it rescaled)
        """
        return (f"this machine runs {abs(self.ratio - 1):.0%} {'slower' if self.ratio > 1 else 'faster'} than "
                f"when {source} was profiled: its estimates are off by about as much (zeroshot device check "
                f"{source} -o NOW.json writes it rescaled)")

    def rescale(self, device: MeasuredDevice) -> MeasuredDevice:
        """``device`` with every correction coefficient multiplied by :attr:`ratio`: its latencies, kernel by
        kernel and per model, times the ratio."""
        out = copy.copy(device)
        out.corrections = {k: {n: v * self.ratio for n, v in c.items()} for k, c in device.corrections.items()}
        out.info = {**device.info, "speed_check_ratio": self.ratio}
        return out


def references(device: MeasuredDevice) -> list[dict]:
    """``device``'s reference rows; :class:`~zeroshot.errors.DeviceError` for a device without them."""
    refs = device.info.get("reference")
    if not refs:
        raise DeviceError(f"device {device.name!r} keeps no reference models (profiled before speed checks "
                          "existed); profile it again: zeroshot device profile -o FILE")
    return refs


def speed_check(device: MeasuredDevice, rounds: int = 15, seed: int = 0) -> SpeedCheck:
    """Measure ``device``'s reference models now, as it was profiled (threads, clock, runtime), against
    their profile-time latency.  Raises :class:`~zeroshot.errors.DeviceError` for a device without them."""
    from .timing import measure_archs

    refs = references(device)
    info = device.info
    timings = measure_archs(rebuilt(refs), threads=info.get("threads", 1), rounds=rounds, seed=seed,
                            clock=info.get("clock", "auto"), runtime=info.get("runtime", "torch"),
                            device=info.get("torch_device", "auto"))
    return SpeedCheck.of(refs, [t.median_ms for t in timings])
