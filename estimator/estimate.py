"""Cost of batches of architectures: exact counts, model bytes at a precision, device latency.

:class:`Estimator` is what `zeroshot estimate` and the screening funnel use: it evaluates code rows of a
space through the segment cache (:mod:`zeroshot.estimator.segmented`), so each distinct block is lowered and costed
once, whatever the number of architectures.

Example
-------
>>> import numpy as np
>>> from zeroshot.spaces import get_space
>>> from zeroshot.estimator.devices import load_device
>>> space = get_space("nb201")
>>> est = Estimator(space, load_device("edgetpu-like"), precision="int8")
>>> out = est.evaluate(space.sample_distinct_codes(3, np.random.default_rng(0)))
>>> sorted(out)
['latency_ms', 'macs', 'model_bytes', 'params', 'peak_activation_bytes']
>>> bool((out["model_bytes"] == out["params"]).all())
True
"""
from __future__ import annotations

import numpy as np

from zeroshot.spaces import SearchSpace

from .counts import bytes_per_element, model_bytes
from .devices import Device, load_device
from .segmented import SegmentedEvaluator, count_metrics, latency_metric

__all__ = ["Estimator"]


class Estimator:
    """``params``, ``macs``, ``peak_activation_bytes`` and ``model_bytes`` (params stored at ``precision``:
    fp32, fp16 or int8) per architecture, and ``latency_ms`` on ``device`` when given (a device object, or
    a built-in name or device file as :func:`~zeroshot.estimator.devices.load_device` takes; the device
    computes at its own element type, ``precision`` sizes memory only).  ``extra`` adds segment metrics."""

    def __init__(self, space: SearchSpace, device: Device | str | None = None, precision: str = "fp32",
                 extra: dict | None = None):
        bytes_per_element(precision)                          # validates the precision
        if device is not None and not isinstance(device, Device):
            device = load_device(device)
        metrics = count_metrics(precision)
        if device is not None:
            metrics["latency_ms"] = latency_metric(device.for_space(space.name))
        metrics.update(extra or {})
        self.precision = precision
        self.evaluator = SegmentedEvaluator(space, metrics)

    def evaluate(self, codes: np.ndarray) -> dict[str, np.ndarray]:
        """The columns of every code row of ``codes`` (arrays in row order)."""
        out = self.evaluator.evaluate(codes)
        out["model_bytes"] = model_bytes(out["params"], self.precision)
        return out
