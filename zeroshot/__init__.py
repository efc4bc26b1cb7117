"""zeroshot: hardware-aware neural-architecture screening on a laptop.

Curated search spaces, zero-shot proxies computed at initialisation, hardware cost estimates for
accelerators, and a screening funnel that hands only a shortlist on to real training.  Every name below is
imported on first use, so ``import zeroshot`` stays light; so is every submodule (``zs.errors``,
``zs.spaces``, ``zs.estimator``, ...), as an attribute.

Example
-------
>>> import zeroshot as zs
>>> "mbv2" in zs.list_spaces() and "mobile-npu-16" in zs.list_devices()
True
>>> archs = zs.get_space("mbv2", P=16).sample(2, seed=0)
>>> t = zs.estimate(archs, space="mbv2", device="mobile-npu-16")
>>> len(t), "latency_ms" in t.columns
(2, True)
>>> zs.errors.ParameterError.__name__
'ParameterError'
"""
import importlib
import importlib.util

__version__ = "0.1.0"

#: public name -> the module that defines it
_PUBLIC = {
    "get_space": "zeroshot.spaces", "list_spaces": "zeroshot.spaces", "register_space": "zeroshot.spaces",
    "list_devices": "zeroshot.estimator.devices", "load_device": "zeroshot.estimator.devices",
    "list_proxies": "zeroshot.proxies", "list_strategies": "zeroshot.strategies",
    "from_torch": "zeroshot.spaces.tracing",
    "estimate": "zeroshot.api", "score": "zeroshot.api", "calibrate": "zeroshot.api", "measure": "zeroshot.api",
    "screen": "zeroshot.funnel", "search": "zeroshot.searching", "advise": "zeroshot.advice",
    "Table": "zeroshot.table", "Error": "zeroshot.errors",
}

__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    if not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")      # importing binds it here: asked once
    raise AttributeError(f"module 'zeroshot' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
