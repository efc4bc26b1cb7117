"""Reference baselines: well-known networks as encodings of a space, by name and task.

A baseline is what a design starts from (the rewrites of :mod:`zeroshot.spaces.rewrites`, the case studies in
``benchmarks/``).  Each task may use its own input resolution, as the reference models do: MobileNetV2
classifies at 224, SSDLite detects at 320 (torchvision ``ssdlite320``), LR-ASPP segments at 512.

Example
-------
>>> get_baseline("mbv2", "mobilenetv2", task="detect")[:12]
'r320 s32 | i'
>>> list_baselines("mbv2")
['mobilenetv2']
>>> get_baseline("mbv2", "resnet50")
Traceback (most recent call last):
...
zeroshot.errors.UnknownNameError: unknown mbv2 baseline 'resnet50'; choose from mobilenetv2
"""
from __future__ import annotations

from dataclasses import dataclass

from zeroshot.errors import ParameterError, UnknownNameError
from zeroshot.registry import Registry

from .mbv2 import MOBILENETV2

__all__ = ["BASELINES", "Baseline", "get_baseline", "list_baselines", "register_baseline"]


@dataclass(frozen=True)
class Baseline:
    """A reference network of ``space``: one encoding per task it serves."""
    name: str
    space: str
    encodings: dict


#: every baseline, by name (names are unique across spaces)
BASELINES: Registry[Baseline] = Registry("baseline")


def register_baseline(space: str, name: str, encodings: dict[str, str]) -> None:
    """Add a baseline of ``space`` under ``name``, one encoding per task it serves."""
    BASELINES.add(name, Baseline(name, space, dict(encodings)))


def list_baselines(space: str) -> list[str]:
    """Names of the baselines of ``space``, sorted (none for a space without baselines)."""
    return [n for n, b in BASELINES.items() if b.space == space]


def get_baseline(space: str, name: str, task: str = "classify") -> str:
    """The encoding of baseline ``name`` of ``space`` for ``task``; :class:`~zeroshot.errors.UnknownNameError`
    for a name that is not one of the space's baselines, :class:`~zeroshot.errors.ParameterError` for a task
    it does not serve."""
    names = list_baselines(space)
    if name not in names:
        others = sorted({b.space for _, b in BASELINES.items()})
        raise UnknownNameError(f"{space} baseline", name, names,
                               "" if names else f"; spaces with baselines: {', '.join(others)}")
    by_task = BASELINES.get(name).encodings
    if task not in by_task:
        raise ParameterError("task", f"one of {', '.join(by_task)} for baseline {name!r}", task)
    return by_task[task]


register_baseline("mbv2", "mobilenetv2", {"classify": MOBILENETV2,
                                          "detect": MOBILENETV2.replace("r224", "r320"),
                                          "segment": MOBILENETV2.replace("r224", "r512")})
