"""A sampled family of analytic accelerators (``npu`` devices) around and between the built-in profiles.

Each device picks two of the built-in ``npu`` profiles (:data:`ANCHORS`) and a point between them: every
rate and size (clock, SRAM size and bandwidth, DRAM bandwidth, per-kernel overhead) is interpolated in
log space and jittered by a log-normal factor (:data:`JITTER`); the lane counts (P in and out, output
pixels, depthwise taps) are drawn as powers of two around the pair's; the fusion rules are drawn from
:data:`FUSION_CHOICES` (a post-processing unit fusing BN, activations and adds, or only BN folded).  The
family is what the calibration prior (:mod:`zeroshot.estimator.calibration_prior`) uses as accelerator
sources, and what benchmarks draw unseen accelerators from: the two draw with disjoint seed streams
(:data:`STREAMS`), so no benchmark device is a prior source.

Example
-------
>>> devices = sample_npu_devices(3, stream="prior")
>>> [d.name for d in devices]
['npu-prior-00', 'npu-prior-01', 'npu-prior-02']
>>> devices[0].to_dict() == sample_npu_devices(1, stream="prior")[0].to_dict()     # deterministic
True
>>> sample_npu_devices(1, stream="test")[0].to_dict() != devices[0].to_dict()
True
>>> y = np.array([1.0, 2.0, 4.0])
>>> bool(np.allclose(np.log(with_noise(y, 0.0, seed=0)), np.log(y)))
True
"""
from __future__ import annotations

import numpy as np

from zeroshot.errors import ParameterError, UnknownNameError

from .devices import load_device
from .npu import NpuDevice

__all__ = ["ANCHORS", "FUSION_CHOICES", "JITTER", "STREAMS", "sample_npu_devices", "with_noise"]

#: the built-in npu profiles the family is sampled around and between
ANCHORS = ("edgetpu-like", "ethos-u55-128", "ethos-u65-512", "mobile-npu-16", "nvdla-large", "nvdla-small",
           "systolic-32")
#: fusion rule sets: a post-processor that fuses BN, activations and adds; no add fusion; only BN folded
FUSION_CHOICES = (("conv+bn", "conv+act", "bn+act", "add+act", "linear+act"),
                  ("conv+bn", "conv+act", "bn+act", "linear+act"),
                  ("conv+bn",))
#: standard deviation of the log-normal jitter of each rate and size around the interpolated value
JITTER = 0.35
#: disjoint seed streams: the prior's sources, and the unseen accelerators of benchmarks and tests
STREAMS = {"prior": 0, "test": 1}
_RATES = ("clock_mhz", "sram_kib", "sram_gbps", "dram_gbps", "overhead_us")
#: lane counts: (least, most, spread of log2 around the pair's); depthwise taps spread wider (the anchors
#: all take one tap per cycle; a vector unit may take a whole 3x3 window)
_LANES = {"lanes": (4, 128, 0.5), "kernel_lanes": (4, 128, 0.5), "pixel_lanes": (1, 16, 0.5),
          "tap_lanes": (1, 16, 1.5)}


def sample_npu_devices(n: int, stream: str = "prior", start: int = 0) -> list[NpuDevice]:
    """Devices ``start .. start + n - 1`` of the family in seed stream ``stream`` (one of :data:`STREAMS`),
    named ``npu-STREAM-NN``; device ``i`` depends on ``(stream, i)`` only."""
    if stream not in STREAMS:
        raise UnknownNameError("device stream", stream, list(STREAMS))
    if not isinstance(n, int) or n < 0:
        raise ParameterError("n", "a non-negative integer", n)
    anchors = [load_device(a).to_dict() for a in ANCHORS]
    return [_sample(anchors, np.random.default_rng([19, STREAMS[stream], i]), f"npu-{stream}-{i:02d}")
            for i in range(start, start + n)]


def _sample(anchors: list[dict], rng: np.random.Generator, name: str) -> NpuDevice:
    a, b = (anchors[i] for i in rng.choice(len(anchors), 2, replace=False))
    t = rng.random()
    d = {f: float(np.exp((1 - t) * np.log(a[f]) + t * np.log(b[f]) + JITTER * rng.normal()))
         for f in _RATES}
    for f, (lo, hi, spread) in _LANES.items():
        mid = (1 - t) * np.log2(a[f]) + t * np.log2(b[f])
        d[f] = int(2 ** np.clip(np.round(mid + rng.normal(0, spread)), np.log2(lo), np.log2(hi)))
    fusion = FUSION_CHOICES[rng.integers(len(FUSION_CHOICES))]
    return NpuDevice(name, fusion=fusion, description=f"sampled between {a['name']} and {b['name']} "
                     f"(t={t:.2f})", **d)


def with_noise(latency_ms, noise: float, seed: int = 0) -> np.ndarray:
    """``latency_ms`` times a log-normal measurement error of standard deviation ``noise`` (0.03: about
    3%)."""
    y = np.asarray(latency_ms, float)
    return y * np.exp(noise * np.random.default_rng(seed).standard_normal(y.shape))
