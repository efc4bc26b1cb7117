"""The interface every search space implements, and what all spaces share on top of it.

An architecture has two forms: its canonical one-line text encoding (stable across versions, what users
read and files store) and a fixed-length int64 code vector (what batch work uses).  A space implements
the conversion between them, the lowering of codes to the IR, and sampling of codes; the base class
gives distinct seeded sampling, mutation, crossover and line-numbered parsing of whole files, and refuses
what is neither an encoding nor a code vector with a :class:`~zeroshot.errors.ParameterError` (every
space's ``parse`` included).

Example
-------
>>> from zeroshot.spaces import get_space
>>> space = get_space("nb201")
>>> space.to_ir(space.parse(space.sample(1, seed=0)[0])).input_shape
(3, 32, 32)
>>> space.mutate(None)
Traceback (most recent call last):
...
zeroshot.errors.ParameterError: arch must be an encoding (str) of space 'nb201', got 'NoneType'
"""
from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from typing import Iterable, Iterator, Sequence

import numpy as np

from zeroshot.checks import check_int, check_seed
from zeroshot.errors import EncodingError, ParameterError

from .ir import Arch

__all__ = ["MAX_RESOLUTION", "EncodingError", "ProductSpace", "SearchSpace"]

#: the largest input side (pixels) of any space's networks and of a network of one's own
MAX_RESOLUTION = 4096


class SearchSpace(ABC):
    """Base class of search spaces.  Subclasses set ``name``, ``description`` and ``code_length``."""

    name: str = ""
    description: str = ""
    code_length: int = 0

    def __init__(self, **options):
        if options:
            raise TypeError(f"space {self.name!r} takes no option(s) {', '.join(sorted(options))}")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "parse" in vars(cls):                    # each space's own parse sees only text
            cls.parse = _text_only(vars(cls)["parse"])

    # ------------------------------------------------------------------ to implement
    @abstractmethod
    def parse(self, text: str) -> np.ndarray:
        """Codes of one encoding; raises :class:`EncodingError` naming what is wrong."""

    @abstractmethod
    def format(self, codes: np.ndarray) -> str:
        """Canonical text encoding of one code vector."""

    @abstractmethod
    def build_ir(self, codes: np.ndarray) -> Arch:
        """The IR of one code vector."""

    @abstractmethod
    def sample_codes(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` code vectors (rows) drawn from the space, possibly repeated."""

    @abstractmethod
    def mutate_codes(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A neighbour of ``codes`` in the space, different from it."""

    @abstractmethod
    def crossover_codes(self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A child in the space taking each choice from ``a`` or ``b``."""

    @property
    @abstractmethod
    def size(self) -> int:
        """Exact number of architectures the space samples from."""

    def segment_keys(self, codes: np.ndarray) -> np.ndarray:
        """Split each architecture (row of ``codes``) into its chain of segments.

        Returns an int64 array (n, S): one key per segment slot (-1: slot unused).  A key identifies a
        segment across the whole space, :meth:`segment_ir` lowers it, and the network is the chain of its
        segments, one tensor passing between consecutive ones.  Lets batch work lower and cost each distinct
        segment once (see :mod:`zeroshot.estimator.segmented`).  Spaces without it are evaluated whole.
        """
        raise NotImplementedError(f"space {self.name!r} has no segment decomposition")

    def segment_ir(self, key: int) -> Arch:
        """IR of one segment: input tensor 0 is the segment's input, its output the segment's output."""
        raise NotImplementedError(f"space {self.name!r} has no segment decomposition")

    def canonical_codes(self, codes: np.ndarray) -> np.ndarray:
        """One representative code vector per class of isomorphic architectures, for each row of
        ``codes``: equal rows out for architectures computing the same function.  Spaces with
        redundant encodings override it (nb201); by default every encoding is its own class."""
        return np.asarray(codes, dtype=np.int64).reshape(-1, self.code_length)

    def enumerate_codes(self, chunk: int = 65536) -> Iterator[np.ndarray]:
        """All code vectors of a finite, enumerable space, in chunks of rows."""
        raise NotImplementedError(f"space {self.name!r} is too large to enumerate (size {self.size:.3g})")

    # ------------------------------------------------------------------ shared
    def to_ir(self, arch: str | np.ndarray) -> Arch:
        """IR of an encoding (text) or a code vector."""
        if isinstance(arch, str):
            return self.build_ir(self.parse(arch))
        codes = np.asarray(arch)
        if codes.dtype.kind not in "iu" or codes.shape != (self.code_length,):
            raise ParameterError("arch", f"an encoding (str) or a code vector ({self.code_length} integers) of "
                                 f"space {self.name!r}", type(arch).__name__ if codes.dtype == object else
                                 f"{codes.dtype} array of shape {codes.shape}")
        return self.build_ir(codes.astype(np.int64))

    def sample(self, n: int, seed: int | None = 0) -> list[str]:
        """``n`` distinct architectures (encodings), reproducible for a seed."""
        return [self.format(c) for c in self.sample_distinct_codes(n, _rng(seed))]

    def sample_distinct_codes(self, n: int, rng: np.random.Generator) -> np.ndarray:
        check_int("n", n, 0, "a non-negative count")
        if n > self.size:
            raise ParameterError("n", f"at most the {self.size} architectures of space {self.name!r} (only "
                                 f"{self.size} distinct ones exist)", n)
        out = np.empty((0, self.code_length), dtype=np.int64)
        while len(out) < n:
            more = np.concatenate([out, self.sample_codes(max(2 * (n - len(out)), 16), rng)])
            _, first = np.unique(more, axis=0, return_index=True)
            out = more[np.sort(first)]
        return out[:n]

    def mutate(self, arch: str, seed: int | None = None) -> str:
        return self.format(self.mutate_codes(self._codes("arch", arch), _rng(seed)))

    def crossover(self, a: str, b: str, seed: int | None = None) -> str:
        return self.format(self.crossover_codes(self._codes("a", a), self._codes("b", b), _rng(seed)))

    def enumerate(self) -> Iterator[str]:
        for chunk in self.enumerate_codes():
            yield from (self.format(c) for c in chunk)

    def parse_many(self, lines: Iterable[str]) -> tuple[list[str], np.ndarray]:
        """Parse one encoding per line (blank lines and ``#`` comments skipped).

        Returns the canonical encodings and their codes; raises :class:`EncodingError` whose message
        starts with ``line N:``.
        """
        texts, rows = [], []
        for i, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                codes = self.parse(line)
            except EncodingError as e:
                raise EncodingError(f"line {i}: {e}") from None
            rows.append(codes)
            texts.append(self.format(codes))
        codes = np.array(rows, dtype=np.int64).reshape(len(rows), self.code_length)
        return texts, codes

    def _codes(self, param: str, text) -> np.ndarray:
        """Codes of the encoding passed as ``param``."""
        _check_text(self, param, text)
        return self.parse(text)

    def irs(self, codes: Sequence[np.ndarray]) -> list[Arch]:
        return [self.build_ir(c) for c in codes]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ProductSpace(SearchSpace):
    """A space whose codes are independent choices: position ``i`` takes values ``0..cards[i]-1``."""

    cards: np.ndarray

    def sample_codes(self, n, rng):
        return rng.integers(0, self.cards, size=(n, len(self.cards)), dtype=np.int64)

    def mutate_codes(self, codes, rng):
        out = np.array(codes, dtype=np.int64)
        i = int(rng.integers(len(self.cards)))
        out[i] = (out[i] + 1 + int(rng.integers(self.cards[i] - 1))) % self.cards[i]
        return out

    def crossover_codes(self, a, b, rng):
        return np.where(rng.random(len(self.cards)) < 0.5, a, b).astype(np.int64)

    @property
    def size(self) -> int:
        return int(np.prod([int(c) for c in self.cards], dtype=object))

    def enumerate_codes(self, chunk=65536):
        if self.size > 10**8:
            return super().enumerate_codes(chunk)
        return self._enumerate_product(chunk)

    def _enumerate_product(self, chunk):
        # Mixed-radix counting, the first position varying slowest.
        weights = np.cumprod(self.cards[::-1])[::-1]
        weights = np.append(weights[1:], 1)
        for start in range(0, self.size, chunk):
            idx = np.arange(start, min(start + chunk, self.size), dtype=np.int64)
            yield (idx[:, None] // weights[None, :]) % self.cards[None, :]


def _check_text(space: SearchSpace, param: str, text) -> None:
    if not isinstance(text, str):
        raise ParameterError(param, f"an encoding (str) of space {space.name!r}", type(text).__name__)


def _text_only(parse):
    """A space's ``parse`` that first refuses anything but text (:class:`~zeroshot.errors.ParameterError`)."""
    @functools.wraps(parse)
    def checked(self, text):
        _check_text(self, "text", text)
        return parse(self, text)
    return checked


def _rng(seed: int | None) -> np.random.Generator:
    """numpy's generator of a checked seed (None: fresh entropy)."""
    return np.random.default_rng(check_seed(seed, optional=True))
