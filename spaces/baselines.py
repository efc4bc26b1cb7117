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
"""
from __future__ import annotations

from .mbv2 import MOBILENETV2

#: space -> baseline name -> task -> encoding
_BASELINES: dict[str, dict[str, dict[str, str]]] = {}


def register_baseline(space: str, name: str, encodings: dict[str, str]) -> None:
    """Add a baseline of ``space`` under ``name``, one encoding per task it serves."""
    _BASELINES.setdefault(space, {})[name] = dict(encodings)


def list_baselines(space: str) -> list[str]:
    return sorted(_BASELINES.get(space, {}))


def get_baseline(space: str, name: str, task: str = "classify") -> str:
    """The encoding of baseline ``name`` of ``space`` for ``task``; ``KeyError`` saying what exists."""
    if space not in _BASELINES:
        raise KeyError(f"space {space!r} has no baselines; spaces with baselines: {', '.join(sorted(_BASELINES))}")
    if name not in _BASELINES[space]:
        raise KeyError(f"unknown baseline {name!r} of {space}; choose from {', '.join(list_baselines(space))}")
    by_task = _BASELINES[space][name]
    if task not in by_task:
        raise KeyError(f"baseline {name!r} has no {task!r} version; choose --task from {', '.join(by_task)}")
    return by_task[task]


register_baseline("mbv2", "mobilenetv2", {"classify": MOBILENETV2,
                                          "detect": MOBILENETV2.replace("r224", "r320"),
                                          "segment": MOBILENETV2.replace("r224", "r512")})
