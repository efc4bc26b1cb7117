"""Registry of zero-shot proxies.

Every proxy has a name, what it needs (``nothing``: topology only; ``random``: a random input;
``images``: real images; ``labels``: images and labels), a direction, a kind (``topology``: computed
for a whole batch from the op table, no torch; ``network``: computed on a built torch network) and a
deterministic implementation for a seed.  A topology proxy also says how its value on a chain of segments
(one tensor passing from each to the next, as the funnel evaluates its spaces) follows from theirs: ``sum``
(params, depth, entropy), ``product`` (paths) or ``live_sum`` (a sum over the ops on an input->output path:
0 when one segment has no such path).

Example
-------
>>> p = get_proxy("params")
>>> (p.kind, p.higher_is_better)
('topology', True)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from zeroshot.errors import ParameterError, UnknownNameError
from zeroshot.registry import Registry

__all__ = ["CHAINS", "KINDS", "NEEDS", "PROXIES", "Proxy", "get_proxy", "list_proxies", "register_proxy"]

NEEDS = ("nothing", "random", "images", "labels")
KINDS = ("topology", "network")
CHAINS = ("sum", "product", "live_sum")


@dataclass(frozen=True)
class Proxy:
    """A registered proxy: what it needs, its direction, its kind, its implementation ``fn`` and, for a
    topology proxy, how it composes over a chain of segments (``chain``, module docstring)."""
    name: str
    needs: str
    higher_is_better: bool
    kind: str
    description: str
    fn: Callable
    chain: str | None = None


#: every proxy; the built-in ones register when their module is imported on first use
PROXIES: Registry[Proxy] = Registry("proxy", builtins=("zeroshot.proxies.topology", "zeroshot.proxies.network"))


def register_proxy(name: str, *, needs: str, higher_is_better: bool, kind: str, description: str,
                   chain: str = "sum"):
    """Decorator registering ``fn`` as a proxy.

    Topology proxies: ``fn(table: OpTable) -> float64 array`` (one score per architecture); ``chain``: how
    the value of a chain of segments follows from theirs (one of :data:`CHAINS`).
    Network proxies: see :mod:`zeroshot.proxies.network` for the shared-pass signature.
    """
    if needs not in NEEDS:
        raise ParameterError("needs", f"one of {', '.join(NEEDS)}", needs)
    if kind not in KINDS:
        raise ParameterError("kind", f"one of {', '.join(KINDS)}", kind)
    if chain not in CHAINS:
        raise ParameterError("chain", f"one of {', '.join(CHAINS)}", chain)

    def deco(fn):
        PROXIES.add(name, Proxy(name, needs, higher_is_better, kind, description, fn,
                                chain if kind == "topology" else None))
        return fn

    return deco


def get_proxy(name: str) -> Proxy:
    """The proxy registered as ``name``; :class:`~zeroshot.errors.UnknownNameError` listing them otherwise."""
    return PROXIES.get(name)


def list_proxies(kind: str | None = None) -> list[str]:
    """Names of the registered proxies (of ``kind``, ``topology`` or ``network``, when given), sorted.

    >>> list_proxies("topology")[:4]
    ['convs', 'depth', 'entropy', 'live_macs']
    """
    if kind is not None and kind not in KINDS:
        raise UnknownNameError("proxy kind", kind, KINDS)
    return [n for n, p in PROXIES.items() if kind is None or p.kind == kind]
