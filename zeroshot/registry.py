"""One registry type for every named thing: spaces, devices, proxies, strategies, rewrites, baselines.

A registry maps names to objects (classes, functions, profiles), registered with its decorator.  Built-in
entries live in modules the registry imports on first use (``builtins``), so no module has to import its
registrations at its bottom and no import cycle forms.  An unknown name raises one
:class:`~zeroshot.errors.UnknownNameError` listing the choices.

Example
-------
>>> colours = Registry("colour")
>>> @colours.register("red")
... def red():
...     return (255, 0, 0)
>>> colours.get("red")()
(255, 0, 0)
>>> colours.names()
['red']
>>> colours.get("blue")
Traceback (most recent call last):
...
zeroshot.errors.UnknownNameError: unknown colour 'blue'; choose from red
"""
from __future__ import annotations

import importlib
from typing import Callable, Generic, Iterator, Sequence, TypeVar

from .errors import UnknownNameError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Named objects of one ``kind`` (the word used in errors), with built-ins loaded from ``builtins``
    (module paths).  ``hint`` ends the unknown-name message; ``error`` is the :class:`~zeroshot.errors.
    UnknownNameError` subclass it raises (one that also subclasses the area's own error, so that
    ``except DeviceError`` keeps catching an unknown device)."""

    def __init__(self, kind: str, builtins: Sequence[str] = (), hint: str = "",
                 error: type[UnknownNameError] = UnknownNameError):
        self.kind = kind
        self.builtins = tuple(builtins)
        self._hint = hint
        self._error = error
        self._items: dict[str, T] = {}
        self._loaded = not self.builtins

    def register(self, name: str | None = None, *, replace: bool = False) -> Callable[[T], T]:
        """Decorator registering its object under ``name`` (default: the object's ``name`` attribute,
        then its ``__name__``).  Registering a taken name raises unless ``replace``."""
        def deco(obj: T) -> T:
            self.add(name or getattr(obj, "name", None) or obj.__name__, obj, replace=replace)
            return obj
        return deco

    def add(self, name: str, obj: T, replace: bool = False) -> None:
        """Register ``obj`` under ``name`` (what the decorator does, for objects that are not definitions)."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._items and not replace and self._items[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered; pass replace=True to replace it")
        self._items[name] = obj

    def get(self, name: str) -> T:
        """The object registered as ``name``; :class:`~zeroshot.errors.UnknownNameError` otherwise."""
        self._load()
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise self._error(self.kind, name, self._items, self._hint) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        self._load()
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        """``(name, object)`` pairs, sorted by name."""
        return [(n, self._items[n]) for n in self.names()]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True             # set first: the modules register into this registry
            try:
                for module in self.builtins:
                    importlib.import_module(module)
            except BaseException:
                self._loaded = False        # a later call raises again rather than miss the rest
                raise
