"""Cost of a batch of architectures in one call: exact counts, memory at a precision, device latency.

Example
-------
>>> from spaces import get_space
>>> from estimator.devices import load_device
>>> space = get_space("nb201")
>>> out = estimate(space.irs(space.sample_distinct_codes(3, __import__("numpy").random.default_rng(0))),
...                load_device("edgetpu-like"), precision="int8")
>>> sorted(out)
['latency_ms', 'macs', 'model_bytes', 'params', 'peak_activation_bytes']
>>> bool((out["model_bytes"] == out["params"]).all())
True
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from spaces.ir import Arch, OpTable, to_table

from .counts import BYTES_PER_ELEMENT, table_counts
from .devices import Device


def estimate(archs: Sequence[Arch] | OpTable, device: Device | None = None,
             precision: str = "fp32") -> dict[str, np.ndarray]:
    """``params``, ``macs``, ``peak_activation_bytes`` and ``model_bytes`` (params stored at
    ``precision``: fp32, fp16 or int8) per architecture, and ``latency_ms`` on ``device`` when given
    (the device computes at its own element type; ``precision`` sizes memory only)."""
    table = archs if isinstance(archs, OpTable) else to_table(archs)
    out = table_counts(table, precision)
    out["model_bytes"] = out["params"] * BYTES_PER_ELEMENT[precision]
    if device is not None:
        out["latency_ms"] = device.latency_ms(table)
    return out
