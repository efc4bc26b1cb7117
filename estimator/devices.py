"""Devices as data: a JSON file names a device's ``kind`` and its parameters.

Each kind is a class registered with :func:`register_kind`; it turns a :class:`~zeroshot.estimator.kernel_table.
KernelTable` into per-architecture latency (ms).  Built-in profiles are the JSON files in
``estimator/profiles/``; :func:`load_device` takes a built-in name or a path.

Example
-------
>>> sorted(list_devices())[:1] != []
True
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from zeroshot.errors import DeviceError

from .kernel_table import DEFAULT_FUSION, KernelTable, decompose, parse_fusion

PROFILES = Path(__file__).with_name("profiles")
_KINDS: dict[str, type["Device"]] = {}


def register_kind(cls: type["Device"]) -> type["Device"]:
    _KINDS[cls.kind] = cls
    return cls


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

    def latency_ms(self, table) -> np.ndarray:
        """Per-architecture latency (ms) of an :class:`~zeroshot.spaces.ir.OpTable`: the sum of its kernels plus
        :attr:`model_overhead_ms`."""
        kt = decompose(table, self.fusion)
        return kt.sum_per_arch(self.kernel_latency_ms(kt)) + self.model_overhead_ms

    def for_space(self, space_name: str) -> "Device":
        """The device as it costs architectures of search space ``space_name`` (kinds with per-space
        corrections override this; by default the same device)."""
        return self

    def summary(self) -> str:
        """One line on the device's main parameters (``zeroshot device list``)."""
        return self.description.split(". ")[0]

    @classmethod
    def from_file(cls, d: dict, path) -> "Device":
        """The device of a JSON object read from file ``path`` (kinds with companion files find them there)."""
        return cls.from_dict(d)

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def device_from_dict(d: dict, path=None) -> Device:
    kind = d.get("kind")
    if kind not in _KINDS:
        raise DeviceError(f"device kind {kind!r} is unknown; choose from {', '.join(sorted(_KINDS))}")
    return _KINDS[kind].from_dict(d) if path is None else _KINDS[kind].from_file(d, path)


def list_devices() -> list[str]:
    """Names of the built-in device profiles."""
    return sorted(p.stem for p in PROFILES.glob("*.json"))


def load_device(name_or_path: str) -> Device:
    """A built-in profile by name, or a device JSON file by path."""
    path = Path(name_or_path)
    if not path.suffix == ".json" or not path.exists():
        builtin = PROFILES / f"{name_or_path}.json"
        if builtin.exists():
            path = builtin
        elif path.suffix == ".json":
            raise DeviceError(f"device file {name_or_path} does not exist")
        else:
            raise DeviceError(f"unknown device {name_or_path!r}; choose from {', '.join(list_devices())} "
                              f"or give a device .json file")
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


from . import calibrated_device, measured_device, npu  # noqa: E402,F401  (registers the built-in kinds)
