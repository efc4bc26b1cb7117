"""Registry of zero-shot proxies.

Every proxy has a name, what it needs (``nothing``: topology only; ``random``: a random input;
``images``: real images; ``labels``: images and labels), a direction, a kind (``topology``: computed
for a whole batch from the op table, no torch; ``network``: computed on a built torch network) and a
deterministic implementation for a seed.

Example
-------
>>> p = get_proxy("params")
>>> (p.kind, p.higher_is_better)
('topology', True)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

NEEDS = ("nothing", "random", "images", "labels")
KINDS = ("topology", "network")


@dataclass(frozen=True)
class Proxy:
    name: str
    needs: str
    higher_is_better: bool
    kind: str
    description: str
    fn: Callable


_PROXIES: dict[str, Proxy] = {}


def register_proxy(name: str, *, needs: str, higher_is_better: bool, kind: str, description: str):
    """Decorator registering ``fn`` as a proxy.

    Topology proxies: ``fn(table: OpTable) -> float64 array`` (one score per architecture).
    Network proxies: see :mod:`zeroshot.proxies.network` for the shared-pass signature.
    """
    if needs not in NEEDS or kind not in KINDS:
        raise ValueError(f"proxy {name}: needs must be one of {NEEDS} and kind one of {KINDS}")

    def deco(fn):
        _PROXIES[name] = Proxy(name, needs, higher_is_better, kind, description, fn)
        return fn

    return deco


def _load_builtins() -> None:
    from . import network, topology  # noqa: F401  (register the built-in proxies)


def get_proxy(name: str) -> Proxy:
    _load_builtins()
    try:
        return _PROXIES[name]
    except KeyError:
        raise KeyError(f"unknown proxy {name!r}; choose from {', '.join(list_proxies())}") from None


def list_proxies(kind: str | None = None) -> list[str]:
    _load_builtins()
    return sorted(n for n, p in _PROXIES.items() if kind is None or p.kind == kind)
