"""Where the time goes: one row per kernel of an architecture on a device, adding up to its latency.

A kernel is a fused group of IR ops, as the device's fusion rules group them
(:func:`~zeroshot.estimator.kernel_table.decompose`).  Each row gives the kernel's index, the IR op indices
it covers (``ops``: op ``i`` of ``arch.ops``, ranges as ``"3-5"``), its ``type`` and ``shape`` (input
channels -> output channels, kernel size and stride where it has them, groups of a grouped conv, input
resolution), ``latency_ms``, ``macs``, ``bytes_moved`` (weights plus activations read and written, at
``precision``), ``lane_utilisation``, ``bound`` and ``share`` of the total.

``lane_utilisation`` and ``bound`` come from the device's model.  On an ``npu`` device the utilisation is
useful channel lanes / lanes occupied once channels are padded to whole lane groups (a conv with 17 output
channels on P = 16 lanes occupies 2 groups: 17/32, times the input side's own padding), and ``bound`` is the
term of the model that wins: ``compute``, ``sram``, ``dram``, or ``overhead`` when the fixed per-kernel
overhead exceeds all three (``folded`` for ``zero`` kernels, which cost nothing).  Devices without lanes give
NaN; a ``measured`` device's kernels are ``measured`` (regressors of timed kernels), a ``calibrated``
device's ``fitted`` (a share of a linear fit to whole-model latencies, which may be negative).  What a whole
model pays beyond its kernels comes last, one row each (``kernel`` None): ``overhead`` (a measured
device's per-model intercept, a calibrated device's intercept) and, for a calibrated device whose floor
lifts the prediction, ``floor``.  The rows add up to ``device.latency_ms`` of the architecture.

Example
-------
>>> from zeroshot.spaces import Graph
>>> g = Graph(32, 56, 56)
>>> t = g.act(g.bn(g.conv(0, 17, k=3)), "relu6")
>>> arch = g.finish(g.classifier(t, 10))
>>> rows = breakdown(arch, "mobile-npu-16", precision="int8")
>>> rows.columns
['kernel', 'ops', 'type', 'shape', 'latency_ms', 'macs', 'bytes_moved', 'lane_utilisation', 'bound', 'share']
>>> list(rows["ops"]), list(rows["type"]), rows["shape"][0]
(['0-2', '3', '4'], ['conv', 'gap', 'linear'], '32->17 k3 s1 56x56')
>>> float(rows["lane_utilisation"][0]) == 17 / 32, rows["bound"][0]
(True, 'compute')
>>> round(float(rows["share"].sum()), 9)
1.0
"""
from __future__ import annotations

import os

import numpy as np

from zeroshot.errors import ParameterError
from zeroshot.spaces.ir import Arch, to_table
from zeroshot.spaces.rewrites import format_ranges
from zeroshot.table import Table

from .counts import bytes_per_element
from .devices import Device, load_device
from .kernel_table import KERNEL_TYPES, KernelTable, decompose

__all__ = ["COLUMNS", "breakdown"]

#: The columns of a breakdown, in order.
COLUMNS = ("kernel", "ops", "type", "shape", "latency_ms", "macs", "bytes_moved", "lane_utilisation", "bound",
           "share")
_WINDOWED = ("conv", "dwconv", "gconv", "pool")        # kernel types with a kernel size and a stride
_SHAPE_FIELDS = ("c_in", "c_out", "k", "stride", "groups", "h_in", "w_in")     # the arguments of _shape_text


def breakdown(arch: Arch, device: Device | str, precision: str = "fp32") -> Table:
    """One row per kernel of ``arch`` on ``device`` (a device object, a built-in name or a device file),
    then one per whole-model term (see the module docstring); ``bytes_moved`` counts elements at
    ``precision`` (fp32, fp16 or int8), while an ``npu`` device computes at its own element type.  The rows
    add up to ``device.latency_ms`` (a ``measured`` device used directly applies its pooled correction: pass
    ``device.for_space(name)`` for a space's own, as the :class:`~zeroshot.estimator.estimate.Estimator`
    does)."""
    if not isinstance(arch, Arch):
        raise ParameterError("arch", "an IR Arch (space.to_ir(encoding) or zeroshot.from_torch(module) gives one)",
                             type(arch).__name__)
    if not isinstance(device, (Device, str, os.PathLike)):
        raise ParameterError("device", "a device name (see list_devices()), a .json path or a device object",
                             type(device).__name__)
    nbytes = bytes_per_element(precision)
    device = load_device(os.fspath(device) if isinstance(device, os.PathLike) else device)
    table = to_table([arch])
    kt = decompose(table, device.fusion)
    costs = device.kernel_costs(table, kt)
    columns = _kernel_columns(kt, costs, nbytes)
    for label, ms in device.model_terms_ms(float(kt.sum_per_arch(costs["latency_ms"])[0])).items():
        for name, value in _model_row(label, ms).items():
            columns[name].append(value)
    latency = np.asarray(columns["latency_ms"], np.float64)
    total = latency.sum()
    columns["share"] = latency / total if total else np.full(len(latency), np.nan)
    return Table(columns)


def _kernel_columns(kt: KernelTable, costs: dict, nbytes: int) -> dict[str, list]:
    """The columns of the kernel rows, as lists (the whole-model rows are appended to them)."""
    c = kt.cols
    types = [KERNEL_TYPES[t] for t in c["type"]]
    moved = (c["in_elems"] + c["out_elems"] + c["weight_elems"]) * nbytes
    return {
        "kernel": list(range(len(types))),
        "ops": _op_spans(kt.op_kernel, len(types)),
        "type": types,
        "shape": [_shape_text(t, *(int(c[f][r]) for f in _SHAPE_FIELDS)) for r, t in enumerate(types)],
        "latency_ms": costs["latency_ms"].tolist(),
        "macs": c["macs"].tolist(),
        "bytes_moved": moved.tolist(),
        "lane_utilisation": costs["lane_utilisation"].tolist(),
        "bound": list(costs["bound"]),
    }


def _model_row(label: str, ms: float) -> dict:
    """The row of a whole-model term: no kernel, ops, shape, MACs, bytes or lanes; ``label`` as type and bound."""
    return {"kernel": None, "ops": "", "type": label, "shape": "", "latency_ms": ms, "macs": 0, "bytes_moved": 0,
            "lane_utilisation": np.nan, "bound": label}


def _op_spans(op_kernel: np.ndarray, n_kernels: int) -> list[str]:
    """The op indices of every kernel as text: runs of consecutive ops as ``"3-5"``, joined by commas."""
    ends = np.cumsum(np.bincount(op_kernel, minlength=n_kernels))
    groups = np.split(np.argsort(op_kernel, kind="stable"), ends[:-1]) if n_kernels else []
    return [format_ranges(ops) for ops in groups]


def _shape_text(ktype: str, c_in: int, c_out: int, k: int, stride: int, groups: int, h: int, w: int) -> str:
    """``"c_in->c_out"``, then ``k`` and ``s`` (windowed kernels) and ``g`` (grouped convs), then the input
    ``HxW``."""
    parts = [f"{c_in}->{c_out}"]
    if ktype in _WINDOWED:
        parts.append(f"k{k} s{stride}")
    if ktype == "gconv":
        parts.append(f"g{groups}")
    return " ".join(parts + [f"{h}x{w}"])
