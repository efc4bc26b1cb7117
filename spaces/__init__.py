"""Search spaces: the IR, a registry of named spaces, and the torch builder.

The built-in spaces (``fbnet``, ``mbv2``, ``nb201``) register themselves when the registry is first read;
:func:`register_space` adds another: a :class:`SearchSpace` subclass, which :func:`get_space` builds with
its options as keywords, checked against what the space takes (:data:`OPTION_ALIASES` lists the short
names some options also go by, such as ``P`` for mbv2's ``parallelism``), or a space object (a declared
:class:`~zeroshot.spaces.macro.MacroSpace`), which :func:`get_space` returns as it is (it takes no options).
Registering from user code lasts for the Python process (and the worker processes it forks).

Example
-------
>>> from zeroshot.spaces import get_space, list_spaces
>>> "nb201" in list_spaces()
True
>>> get_space("nb201").size
15625
>>> get_space("mbv2", P=32).parallelism
32
>>> get_space("nb201", parallelism=16)
Traceback (most recent call last):
...
zeroshot.spaces.SpaceOptionError: space 'nb201' does not take parallelism; it takes classes, channels, cells, resolution
"""
from __future__ import annotations

import inspect

from zeroshot.errors import ParameterError
from zeroshot.registry import Registry

from .base import EncodingError, ProductSpace, SearchSpace
from .ir import Arch, Graph, Op, OpTable, to_table

__all__ = ["OPTION_ALIASES", "SPACES", "Arch", "EncodingError", "Graph", "Op", "OpTable", "ProductSpace",
           "SearchSpace", "SpaceOptionError", "get_space", "list_space_options", "list_spaces",
           "register_space", "to_table"]

#: every named space; the built-in ones register when their module is imported on first use
SPACES: Registry[type[SearchSpace]] = Registry(
    "space", builtins=("zeroshot.spaces.fbnet", "zeroshot.spaces.mbv2", "zeroshot.spaces.nb201"))

#: space -> {alias: option}: other names :func:`get_space` accepts for an option
OPTION_ALIASES: dict[str, dict[str, str]] = {"mbv2": {"P": "parallelism"}}


class SpaceOptionError(ParameterError):
    """An option a space does not take: ``param`` names it, ``space`` the space and ``accepted`` the
    options it takes (:func:`list_space_options`)."""

    def __init__(self, space: str, option: str, accepted):
        self.space, self.accepted = space, tuple(accepted)
        super().__init__(option, f"an option of space {space!r}")

    def message_for(self, name: str) -> str:
        aliases = {option: alias for alias, option in OPTION_ALIASES.get(self.space, {}).items()}
        takes = [f"{o} (or {aliases[o]})" if o in aliases else o for o in self.accepted]
        return f"space {self.space!r} does not take {name}; it takes {', '.join(takes) or 'no options'}"


def register_space(space, name: str | None = None, *, replace: bool = False):
    """Add a space to the registry and return it: a :class:`SearchSpace` subclass (a class decorator; under
    ``cls.name``) or a space object (under ``name``, default its ``name``, which becomes its ``name``).
    A taken name, a built-in one included, raises :class:`~zeroshot.errors.ParameterError` unless
    ``replace``.  A registration lasts for the process (no example runs here for that reason: see
    ``docs/spaces.md``, "Declare your own space").
    """
    if isinstance(space, type) and issubclass(space, SearchSpace):
        return SPACES.register(name or space.name, replace=replace)(space)
    if not isinstance(space, SearchSpace):
        raise ParameterError("space", "a SearchSpace subclass or a space object (e.g. a declared MacroSpace)",
                             type(space).__name__)
    name = name or space.name
    SPACES.add(name, space, replace=replace)
    space.name = name
    return space


def list_spaces() -> list[str]:
    """Names of the registered spaces, sorted.

    >>> list_spaces()
    ['fbnet', 'mbv2', 'nb201']
    """
    return SPACES.names()


def list_space_options(name: str) -> list[str]:
    """The options space ``name`` takes (the keyword parameters of its constructor), in their order.

    >>> list_space_options("mbv2")
    ['parallelism', 'classes', 'task', 'raw']
    """
    entry = SPACES.get(name)
    if isinstance(entry, SearchSpace) or entry.__init__ is SearchSpace.__init__:   # built, or refuses options
        return []
    init = entry.__init__
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in list(inspect.signature(init).parameters.values())[1:] if p.kind in kinds]


def get_space(name: str, **options) -> SearchSpace:
    """The space registered as ``name``, built with ``options`` (for example ``classes=100``, or ``P=16``
    for mbv2's ``parallelism``); a space registered as an object is returned as it is.

    An unknown name raises :class:`~zeroshot.errors.UnknownNameError` listing the spaces; an option the
    space does not take raises :class:`SpaceOptionError` listing those it takes; the space's constructor
    checks the values.

    >>> get_space("mbv2", P=16, classes=100)
    Mbv2Space(parallelism=16, classes=100, task='classify')
    >>> get_space("nb201").sample(1, seed=0)
    ['|avg_pool_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|skip_connect~1|none~2|']
    """
    entry = SPACES.get(name)
    options = _unaliased(name, options)
    accepted = list_space_options(name)
    for option in options:
        if option not in accepted:
            raise SpaceOptionError(name, option, accepted)
    return entry if isinstance(entry, SearchSpace) else entry(**options)


def _unaliased(name: str, options: dict) -> dict:
    """``options`` with every alias of :data:`OPTION_ALIASES` replaced by the option it stands for."""
    out = dict(options)
    for alias, option in OPTION_ALIASES.get(name, {}).items():
        if alias in out:
            if option in out:
                raise ParameterError(alias, f"omitted when {option} is given (another name of {option})",
                                     out[alias])
            out[option] = out.pop(alias)
    return out
