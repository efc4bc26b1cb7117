"""Devices as data: a JSON file names a device's ``kind`` and its parameters.

Each kind is a class registered with :func:`register_kind` (the built-in kinds, ``npu``, ``calibrated``
and ``measured``, register when their module is imported on first use); it turns a
:class:`~zeroshot.estimator.kernel_table.KernelTable` into per-architecture latency (ms).  Built-in profiles
are the JSON files in ``estimator/profiles/``, registered by name in :data:`DEVICES`; :func:`load_device`
takes a built-in name, a path or a device.

Example
-------
>>> "mobile-npu-16" in list_devices()
True
>>> device = load_device("mobile-npu-16")
>>> device_from_dict(device.to_dict()).to_dict() == device.to_dict()
True
>>> load_device("tpu")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
zeroshot.estimator.devices.UnknownDeviceError: unknown device 'tpu'; choose from ... or give a device .json file
"""
from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from zeroshot.errors import DeviceError, ParameterError, UnknownNameError
from zeroshot.registry import Registry

from .kernel_table import DEFAULT_FUSION, KernelTable, decompose, parse_fusion

__all__ = ["DEVICES", "KINDS", "PROFILES", "Device", "DeviceError", "UnknownDeviceError", "device_from_dict",
           "list_devices", "load_device", "register_kind"]

PROFILES = Path(__file__).with_name("profiles")


class UnknownDeviceError(UnknownNameError, DeviceError):
    """A device or device kind name that is not registered (an :class:`~zeroshot.errors.UnknownNameError`
    and a :class:`~zeroshot.errors.DeviceError`)."""


#: device kinds (classes); the built-in ones register when their module is imported on first use
KINDS: Registry[type["Device"]] = Registry(
    "device kind", builtins=("zeroshot.estimator.npu", "zeroshot.estimator.calibrated_device",
                            "zeroshot.estimator.measured_device"),
    error=UnknownDeviceError)
#: named device profiles: the JSON files of :data:`PROFILES`
DEVICES: Registry[Path] = Registry("device", hint=" or give a device .json file", error=UnknownDeviceError)
for _profile in PROFILES.glob("*.json"):
    DEVICES.add(_profile.stem, _profile)


def register_kind(cls: type["Device"]) -> type["Device"]:
    """Class decorator adding a device kind to :data:`KINDS` under ``cls.kind``."""
    return KINDS.register(cls.kind)(cls)


class Device(ABC):
    """A latency model of one device.  Subclasses set ``kind`` and implement the three methods."""

    kind: str = ""

    def __init__(self, name: str, fusion=DEFAULT_FUSION, description: str = ""):
        self.name = name
        self.fusion = parse_fusion(fusion)
        self.description = description

    @classmethod
    @abstractmethod
    def from_dict(cls, d: dict) -> "Device":
        """The device described by a parsed JSON object (validated; raises :class:`DeviceError`)."""

    @abstractmethod
    def to_dict(self) -> dict:
        """A JSON-serialisable description that :meth:`from_dict` reads back."""

    @abstractmethod
    def kernel_latency_ms(self, kt: KernelTable) -> np.ndarray:
        """Latency (ms) of every kernel row of ``kt``."""

    #: Fixed cost of running one whole architecture beyond its kernels (ms), added once per architecture.
    model_overhead_ms: float = 0.0
    #: True when a kernel's cost depends on the whole graph (constant folding), so architectures must be
    #: costed whole rather than as a sum of separately lowered segments.
    whole_graph: bool = False

    #: What bounds a kernel, as :meth:`kernel_costs` reports it, on a kind without a finer account.
    kernel_bound: str = "predicted"

    def latency_ms(self, table) -> np.ndarray:
        """Per-architecture latency (ms) of an :class:`~zeroshot.spaces.ir.OpTable`: the sum of its kernels plus
        :attr:`model_overhead_ms`."""
        kt = decompose(table, self.fusion)
        return kt.sum_per_arch(self.graph_kernel_ms(table, kt)) + self.model_overhead_ms

    def graph_kernel_ms(self, table, kt: KernelTable) -> np.ndarray:
        """Latency (ms) of every kernel of ``kt`` within the graphs of ``table`` it was decomposed from (what
        :meth:`latency_ms` sums; kinds whose kernel costs depend on the whole graph override this)."""
        return self.kernel_latency_ms(kt)

    def kernel_costs(self, table, kt: KernelTable) -> dict[str, np.ndarray]:
        """Per kernel of ``kt`` (decomposed from ``table``): ``latency_ms`` (as :meth:`graph_kernel_ms`),
        ``bound`` (what limits it, text: :attr:`kernel_bound` unless the kind models it) and
        ``lane_utilisation`` (useful channel lanes / lanes occupied; NaN on devices without lanes)."""
        ms = self.graph_kernel_ms(table, kt)
        return {"latency_ms": ms, "bound": np.full(len(ms), self.kernel_bound, object),
                "lane_utilisation": np.full(len(ms), np.nan)}

    def model_terms_ms(self, kernels_ms: float) -> dict[str, float]:
        """What one architecture whose kernels sum to ``kernels_ms`` pays beyond them (label -> ms); with
        the kernels they add up to :meth:`latency_ms`.  By default the :attr:`model_overhead_ms`, if any."""
        return {"overhead": self.model_overhead_ms} if self.model_overhead_ms else {}

    def for_space(self, space_name: str) -> "Device":
        """The device as it costs architectures of search space ``space_name`` (kinds with per-space
        corrections override this; by default the same device)."""
        return self

    def summary(self) -> str:
        """One line on the device's main parameters (``zeroshot device list``)."""
        return self.description.split(". ")[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}: {self.summary()})"

    @classmethod
    def from_file(cls, d: dict, path) -> "Device":
        """The device of a JSON object read from file ``path`` (kinds with companion files find them there)."""
        return cls.from_dict(d)

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def device_from_dict(d: dict, path=None) -> Device:
    """The device a parsed JSON object describes, by its ``kind`` (read from file ``path`` when given)."""
    if not isinstance(d, dict) or "kind" not in d:
        raise DeviceError(f"a device JSON object needs a 'kind' field (one of "
                          f"{', '.join(KINDS.names())}); is it a device file?")
    cls = KINDS.get(d["kind"])
    return cls.from_dict(d) if path is None else cls.from_file(d, path)


def list_devices() -> list[str]:
    """Names of the built-in device profiles.

    >>> list_devices()[:3]
    ['edgetpu-like', 'ethos-u55-128', 'ethos-u65-512']
    """
    return DEVICES.names()


def load_device(device) -> Device:
    """A device: a built-in profile's name, a device JSON file's path, or a :class:`Device` (returned as is).

    >>> load_device("mobile-npu-16")
    NpuDevice('mobile-npu-16': P=16 (lanes 16 in x 16 out x 4 px = 1024 MACs/cycle) @ 800 MHz, 1024 KiB SRAM, 12.8 GB/s DRAM, int8)
    """
    if isinstance(device, Device):
        return device
    if not isinstance(device, (str, os.PathLike)):
        raise ParameterError("device", "a device name (zeroshot.list_devices()), a device .json path or a device "
                             "object", type(device).__name__)
    path = Path(device)
    if path.suffix != ".json":
        path = DEVICES.get(str(device))
    elif not path.exists():
        raise DeviceError(f"device file {device} does not exist")
    try:
        d = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DeviceError(f"cannot read device file {path}: {e}") from None
    if not isinstance(d, dict):
        raise DeviceError(f"device file {path} must hold a JSON object")
    try:
        return device_from_dict(d, path)
    except DeviceError as e:
        raise DeviceError(f"{path}: {e}") from None
