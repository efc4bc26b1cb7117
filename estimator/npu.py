"""The ``npu`` device kind: an analytic accelerator with a channel parallelism factor P.

The array multiplies ``lanes`` (P) input channels by ``kernel_lanes`` output channels at ``pixel_lanes``
output pixels per cycle.  Channel counts are padded to whole lane groups, so a layer with P + 1 channels
costs as much as one with 2P.  Depthwise convs and pools have no reduction over input channels: they use
one row of P lanes and ``tap_lanes`` window taps per cycle, so they leave most of the array idle.  A grouped
conv runs group by group, each padded to the lanes.  A kernel's time is ``max(cycles / clock, SRAM bytes /
SRAM bandwidth, DRAM bytes / DRAM bandwidth) + overhead``; weights stream from DRAM, and activations go
through DRAM too when the kernel's live set (input + output + weights) exceeds the SRAM.  Fused ops
(``fusion`` rules) cost nothing beyond their kernel's head; ``zero`` kernels are folded away.
:meth:`NpuDevice.kernel_costs` also says which term bounds each kernel (:data:`BOUNDS`) and how many of
the lanes its padding occupies carry real channels (:mod:`zeroshot.estimator.breakdown` shows both).

Example
-------
>>> from zeroshot.spaces import get_space, to_table
>>> from zeroshot.estimator.devices import load_device
>>> space = get_space("nb201")
>>> npu = load_device("nvdla-large")
>>> npu.lanes, npu.macs_per_cycle
(64, 2048)
>>> float(npu.latency_ms(to_table([space.to_ir(space.sample(1)[0])]))[0]) > 0
True
"""
from __future__ import annotations

import numbers

import numpy as np

from ._npu import kernel_ms
from .counts import BYTES_PER_ELEMENT
from .devices import Device, DeviceError, register_kind
from .kernel_table import DEFAULT_FUSION, KERNEL_TYPES, KernelTable

__all__ = ["BOUNDS", "FIELDS", "NpuDevice"]

#: What bounds a kernel, by the codes of ext/_npu.pyx: the largest of its compute, SRAM and DRAM times, or its
#: fixed overhead when that is larger still; ``folded`` for ``zero`` kernels, which cost nothing.
BOUNDS = ("compute", "sram", "dram", "overhead", "folded")

# The Cython kernel numbers kernel types in this order (ext/_npu.pyx); fail loudly if it ever changes.
_PYX_TYPES = ("conv", "dwconv", "gconv", "bn", "act", "add", "mul", "pool", "gap", "linear", "zero",
              "upsample", "concat")
if tuple(KERNEL_TYPES[:len(_PYX_TYPES)]) != _PYX_TYPES:
    raise ImportError(f"zeroshot.estimator.kernel_table.KERNEL_TYPES changed order ({KERNEL_TYPES}); "
                      f"update ext/_npu.pyx, which expects {_PYX_TYPES}")

#: field -> (type, required, help).  Integers are lane counts; floats are positive rates and sizes.
FIELDS = {
    "lanes": (int, True, "P: input channels the array reduces per cycle"),
    "kernel_lanes": (int, False, "output channels per cycle (default: lanes)"),
    "pixel_lanes": (int, False, "output pixels per cycle (default 1)"),
    "tap_lanes": (int, False, "depthwise / pool window taps per cycle (default 1)"),
    "clock_mhz": (float, True, "array clock in MHz"),
    "sram_kib": (float, True, "on-chip buffer for a kernel's live set, KiB"),
    "sram_gbps": (float, True, "on-chip buffer bandwidth, GB/s"),
    "dram_gbps": (float, True, "off-chip memory bandwidth, GB/s"),
    "overhead_us": (float, True, "fixed cost per kernel (launch, configuration), microseconds"),
    "dtype": (str, False, "element type of weights and activations on the device (default int8)"),
}
_COMMON = ("kind", "name", "description", "fusion")


@register_kind
class NpuDevice(Device):
    """An analytic NPU (see the module docstring); build it with :meth:`from_dict` or keywords."""

    kind = "npu"

    def __init__(self, name: str, lanes: int, clock_mhz: float, sram_kib: float, sram_gbps: float,
                 dram_gbps: float, overhead_us: float, kernel_lanes: int | None = None, pixel_lanes: int = 1,
                 tap_lanes: int = 1, dtype: str = "int8", fusion=DEFAULT_FUSION, description: str = ""):
        try:
            super().__init__(name, fusion, description)
        except ValueError as e:
            raise DeviceError(f"npu device {name!r}: {e}") from None
        given = dict(lanes=lanes, kernel_lanes=lanes if kernel_lanes is None else kernel_lanes,
                     pixel_lanes=pixel_lanes, tap_lanes=tap_lanes, clock_mhz=clock_mhz, sram_kib=sram_kib,
                     sram_gbps=sram_gbps, dram_gbps=dram_gbps, overhead_us=overhead_us, dtype=dtype)
        for field, value in given.items():          # validated here, so the Cython kernel never divides by 0
            setattr(self, field, _checked(name, field, value))

    @property
    def macs_per_cycle(self) -> int:
        return self.lanes * self.kernel_lanes * self.pixel_lanes

    @classmethod
    def from_dict(cls, d: dict) -> "NpuDevice":
        unknown = sorted(set(d) - set(FIELDS) - set(_COMMON))
        if unknown:
            raise DeviceError(f"npu device has unknown field(s) {', '.join(unknown)}; "
                              f"known fields: {', '.join(_COMMON + tuple(FIELDS))}")
        missing = ["name"] * ("name" not in d) + [f for f, (_, req, _) in FIELDS.items() if req and f not in d]
        if missing:
            raise DeviceError(f"npu device is missing field(s) {', '.join(missing)} ("
                              + "; ".join(f"{f}: {FIELDS[f][2] if f in FIELDS else 'the device name'}"
                                          for f in missing) + ")")
        kw = {f: d[f] for f in FIELDS if f in d}
        if not isinstance(d["name"], str) or not d["name"]:
            raise DeviceError(f"npu device field 'name' must be a non-empty string, got {d['name']!r}")
        fusion = d.get("fusion", DEFAULT_FUSION)
        if not isinstance(fusion, list | tuple):
            raise DeviceError(f"npu device field 'fusion' must be a list like {list(DEFAULT_FUSION)}, "
                              f"got {fusion!r}")
        return cls(d["name"], fusion=fusion, description=str(d.get("description", "")), **kw)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "description": self.description,
                **{f: getattr(self, f) for f in FIELDS}, "fusion": list(self.fusion)}

    def summary(self) -> str:
        return (f"P={self.lanes} (lanes {self.lanes} in x {self.kernel_lanes} out x {self.pixel_lanes} px = "
                f"{self.macs_per_cycle} MACs/cycle) "
                f"@ {self.clock_mhz:g} MHz, {self.sram_kib:g} KiB SRAM, {self.dram_gbps:g} GB/s DRAM, "
                f"{self.dtype}")

    def kernel_latency_ms(self, kt: KernelTable) -> np.ndarray:
        return self._kernel_ms(kt)[0]

    def kernel_costs(self, table, kt: KernelTable) -> dict[str, np.ndarray]:
        """Per kernel: ``latency_ms``, ``bound`` (the term of the model that wins, one of :data:`BOUNDS`) and
        ``lane_utilisation`` (useful channel lanes / lanes the padding to P occupies)."""
        ms, bound, lanes = self._kernel_ms(kt, detail=True)
        return {"latency_ms": ms, "bound": np.asarray(BOUNDS, object)[bound], "lane_utilisation": lanes}

    def _kernel_ms(self, kt: KernelTable, detail: bool = False):
        """The Cython model over ``kt``: latency (ms), and with ``detail`` bound codes and lane utilisation."""
        c = kt.cols
        n = len(c["type"])
        out = np.empty(n, np.float64)
        bound, lanes = (np.empty(n, np.int64), np.empty(n, np.float64)) if detail else (None, None)
        kernel_ms(c["type"], c["c_in"], c["c_out"], c["h_in"], c["w_in"], c["h_out"], c["w_out"], c["k"],
                  c["groups"], c["in_elems"], c["out_elems"], c["weight_elems"],
                  self.lanes, self.kernel_lanes, self.pixel_lanes, self.tap_lanes,
                  self.clock_mhz * 1e6, self.sram_kib * 1024.0, self.sram_gbps * 1e9, self.dram_gbps * 1e9,
                  self.overhead_us * 1e-6, BYTES_PER_ELEMENT[self.dtype], out, bound, lanes)
        return out, bound, lanes


def _checked(name: str, field: str, value):
    """``value`` of ``field`` converted to its type, or a :class:`DeviceError` saying what was expected."""
    typ, _, help_ = FIELDS[field]
    if typ is str:
        if not isinstance(value, str) or value not in BYTES_PER_ELEMENT:
            raise DeviceError(f"npu device {name!r}: field {field!r} must be one of "
                              f"{', '.join(BYTES_PER_ELEMENT)}, got {value!r}")
        return value
    number = isinstance(value, numbers.Integral if typ is int else numbers.Real) and not isinstance(value, bool)
    zero_ok = field == "overhead_us"
    if not number or not np.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        kind = "a positive integer" if typ is int else "a non-negative number" if zero_ok else "a positive number"
        raise DeviceError(f"npu device {name!r}: field {field!r} ({help_}) must be {kind}, got {value!r}")
    return typ(value)
