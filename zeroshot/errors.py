"""Typed errors: every error zeroshot raises on bad input is a :class:`Error`.

Each kind also subclasses the built-in exception it refines (``ValueError``, ``KeyError``, ``OSError``), so
``except ValueError`` keeps working.  Messages say what was expected, what came and how to fix it, and name
the parameter (:class:`ParameterError`); the command line prints any :class:`Error` as one line with exit
status 2, naming its flag instead of the parameter.  Any other exception is a bug and keeps its traceback.

Example
-------
>>> err = ParameterError("survivors", "an integer >= 0", -1)
>>> str(err)
'survivors must be an integer >= 0, got -1'
>>> err.message_for("--survivors")
'--survivors must be an integer >= 0, got -1'
>>> isinstance(err, ValueError) and isinstance(err, Error)
True
"""
from __future__ import annotations

from typing import Iterable

__all__ = ["DataError", "DeviceError", "EncodingError", "Error", "InputError", "MissingExtraError",
           "ParameterError", "StoreError", "UnknownNameError", "UnsupportedLayerError"]


class Error(Exception):
    """Base of every error zeroshot raises on bad input: ``except zs.Error`` catches them all.

    >>> import zeroshot as zs
    >>> try:
    ...     zs.get_space("nb201").sample(-1)
    ... except zs.Error as e:
    ...     print(type(e).__name__, e)
    ParameterError n must be a non-negative count, got -1
    """


class InputError(Error, ValueError):
    """Input that cannot be used as given (values, combinations of options, files' contents)."""


class ParameterError(InputError):
    """A parameter outside what it accepts.  ``param`` names it; :meth:`message_for` words the message
    for another name of the same parameter (a command-line flag)."""

    def __init__(self, param: str, expected: str, got=None, fix: str | None = None):
        self.param, self.expected, self.got, self.fix = param, expected, got, fix
        super().__init__(self.message_for(param))

    def message_for(self, name: str) -> str:
        text = f"{name} must be {self.expected}"
        if self.got is not None:
            text += f", got {self.got!r}"
        return text + (f"; {self.fix}" if self.fix else "")


class UnknownNameError(Error, KeyError):
    """A name that is not registered: says which kind of thing it should name and lists the choices."""

    def __init__(self, kind: str, name: str, choices: Iterable[str], hint: str = ""):
        self.kind, self.name, self.choices = kind, name, sorted(choices)
        super().__init__(f"unknown {kind} {name!r}; choose from {', '.join(self.choices) or '(none)'}{hint}")

    def __str__(self) -> str:             # KeyError would print the message's repr
        return self.args[0]


class MissingExtraError(Error, ImportError):
    """An optional dependency that is not installed: names the package and the install line.

    >>> str(MissingExtraError("onnx", "export to ONNX"))
    "export to ONNX needs the optional package onnx: pip install 'zeroshot-nas[onnx]' (or pip install onnx)"
    """

    def __init__(self, package: str, what: str, extra: str | None = None):
        self.package = package
        super().__init__(f"{what} needs the optional package {package}: pip install "
                         f"'zeroshot-nas[{extra or package}]' (or pip install {package})")


class UnsupportedLayerError(InputError):
    """A layer of a user's network the IR cannot describe exactly: names its path and its type.

    >>> str(UnsupportedLayerError("features.3.rnn", "LSTM", fix="see the supported layers"))
    'features.3.rnn (LSTM) is not supported; see the supported layers'
    """

    def __init__(self, path: str, kind: str, why: str = "", fix: str | None = None):
        self.path, self.kind, self.fix = path, kind, fix
        super().__init__(f"{path} ({kind}) is not supported{why}" + (f"; {fix}" if fix else ""))


class EncodingError(InputError):
    """An architecture encoding that does not parse in its space (the message names what is wrong)."""


class DeviceError(InputError):
    """A device that cannot be loaded or cannot cost what it was given."""


class DataError(InputError):
    """A data file (images, labels, tables of measurements) that cannot be read or does not fit."""


class StoreError(InputError):
    """A results database that cannot be used for this run (another space, a newer schema, no such run)."""
