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
zeroshot.errors.ParameterError: seed must be an integer from 0 to 2^63 - 1, got -1
>>> check_seed(None, optional=True) is None
True
"""
from __future__ import annotations

from numbers import Integral

from .errors import ParameterError

__all__ = ["MAX_SEED", "check_batch_size", "check_int", "check_seed"]


def check_int(param: str, value, least: int = 0, expected: str | None = None, most: int | None = None) -> int:
    """``value`` as an int when it is an integer (not a bool) from ``least`` to ``most``; else a
    ParameterError saying ``expected`` (default: "an integer >= least")."""
    if (isinstance(value, bool) or not isinstance(value, Integral) or value < least
            or (most is not None and value > most)):
        raise ParameterError(param, expected or f"an integer >= {least}", value)
    return int(value)


#: the largest seed: numpy takes any integer >= 0, torch's generators a signed 64-bit one
MAX_SEED = 2 ** 63 - 1


def check_seed(seed, param: str = "seed", optional: bool = False) -> int | None:
    """A seed: an integer from 0 to :data:`MAX_SEED` (or None where ``optional``: fresh entropy)."""
    if seed is None and optional:
        return None
    return check_int(param, seed, 0, "an integer from 0 to 2^63 - 1", MAX_SEED)


def check_batch_size(n: int, param: str = "batch_size") -> None:
    """The one rule on batches for network proxies: at least 2 images (train-mode batch statistics).

    >>> check_batch_size(1)
    Traceback (most recent call last):
    ...
    zeroshot.errors.ParameterError: batch_size must be at least 2 images (network proxies read batch statistics), got 1
    """
    check_int(param, n, 2, "at least 2 images (network proxies read batch statistics)")
