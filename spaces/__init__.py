"""Search spaces: the IR, a registry of named spaces, and the torch builder.

Example
-------
>>> from zeroshot.spaces import get_space, list_spaces
>>> "nb201" in list_spaces()
True
>>> get_space("nb201").size
15625
"""
from __future__ import annotations

from .base import EncodingError, ProductSpace, SearchSpace
from .ir import Arch, Graph, Op, OpTable, to_table

_REGISTRY: dict[str, type[SearchSpace]] = {}


def register_space(cls: type[SearchSpace]) -> type[SearchSpace]:
    """Class decorator adding a space to the registry under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def list_spaces() -> list[str]:
    return sorted(_REGISTRY)


def get_space(name: str, **options) -> SearchSpace:
    """The space registered as ``name``, built with ``options`` (for example ``classes=100``)."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown space {name!r}; choose from {', '.join(list_spaces())}") from None
    return cls(**options)


from . import fbnet, mbv2, nb201  # noqa: E402,F401  (registers the built-in spaces)

__all__ = ["Arch", "EncodingError", "Graph", "Op", "OpTable", "ProductSpace", "SearchSpace",
           "get_space", "list_spaces", "register_space", "to_table"]
