"""Parameter checks shared by the API, the run configurations and the spaces: counts and seeds, refused
with a :class:`~zeroshot.errors.ParameterError` naming the parameter before any work starts.

Example
-------
>>> check_int("rounds", 3, least=1)
3
>>> check_int("rounds", "3", least=1)
Traceback (most recent call last):
...
zeroshot.errors.ParameterError: rounds must be an integer >= 1, got '3'
>>> check_seed(-1)
Traceback (most recent call last):
...
zeroshot.errors.ParameterError: seed must be an integer >= 0 (numpy's generators take no negative seed), got -1
>>> check_seed(None, optional=True) is None
True
"""
from __future__ import annotations

from numbers import Integral

from .errors import ParameterError

__all__ = ["check_int", "check_seed"]


def check_int(param: str, value, least: int = 0, expected: str | None = None) -> int:
    """``value`` as an int when it is an integer (not a bool) of at least ``least``; else a ParameterError
    saying ``expected`` (default: "an integer >= least")."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < least:
        raise ParameterError(param, expected or f"an integer >= {least}", value)
    return int(value)


def check_seed(seed, param: str = "seed", optional: bool = False) -> int | None:
    """A seed: an integer >= 0 (or None where ``optional``: fresh entropy)."""
    if seed is None and optional:
        return None
    return check_int(param, seed, 0, "an integer >= 0" + (" or None" if optional else "")
                     + " (numpy's generators take no negative seed)")
