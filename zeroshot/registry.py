"""One registry type for every named thing: spaces, devices, proxies, strategies, rewrites, baselines.

A registry maps names to objects (classes, functions, profiles), registered with its decorator.  Built-in
entries live in modules the registry imports on first use (``builtins``), so no module has to import its
registrations at its bottom and no import cycle forms.  An unknown name raises one
:class:`~zeroshot.errors.UnknownNameError` listing the choices; a taken name (a built-in one included, before
the built-ins have loaded) one :class:`~zeroshot.errors.ParameterError`.

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
>>> colours.add("red", (254, 0, 0))
Traceback (most recent call last):
...
zeroshot.errors.ParameterError: name must be a name no other colour is registered under, got 'red'; colour 'red' is already registered: pass replace=True to replace it, or choose another name
"""
from __future__ import annotations

import importlib
import inspect
from typing import Callable, Generic, Iterator, Sequence, TypeVar

from .errors import ParameterError, UnknownNameError

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
        """Register ``obj`` under ``name`` (what the decorator does, for objects that are not definitions).
        The built-ins load first, so that a built-in name is taken whichever comes first, unless a built-in
        module is registering (loading the others in the middle of its import could meet it half-built)."""
        if not isinstance(name, str) or not name:
            raise ParameterError("name", f"a non-empty string (the {self.kind}'s name)", name)
        if not self._loaded and not self._builtin_importing():
            self._load()
        if name in self._items and not replace and self._items[name] is not obj:
            raise ParameterError("name", f"a name no other {self.kind} is registered under", name,
                                 fix=f"{self.kind} {name!r} is already registered: pass replace=True to replace it, "
                                     "or choose another name")
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

    def _builtin_importing(self) -> bool:
        """Whether the code of a built-in module's import (its top level) is running."""
        frame = inspect.currentframe()
        while frame is not None:
            if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") in self.builtins:
                return True
            frame = frame.f_back
        return False

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True             # set first: the modules register into this registry
            try:
                for module in self.builtins:
                    importlib.import_module(module)
            except BaseException:
                self._loaded = False        # a later call raises again rather than miss the rest
                raise
