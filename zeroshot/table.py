"""Results as tables: named columns of equal length, one row per input, in input order.

``t["col"]`` is a 1-D numpy array; ``len(t)`` the number of rows; ``t.columns`` the names in order;
iterating gives one dict per row (Python scalars); ``t.to_csv(path)`` writes it (floats as their shortest
exact text, so the CSV reads back to the same numbers), ``t.to_pandas()`` gives a DataFrame where pandas is
installed (an optional extra).

Example
-------
>>> t = Table({"arch": ["a", "b"], "latency_ms": [1.5, 0.75]})
>>> len(t), t.columns
(2, ['arch', 'latency_ms'])
>>> t["latency_ms"]
array([1.5 , 0.75])
>>> list(t)[1]
{'arch': 'b', 'latency_ms': 0.75}
>>> print(t.to_csv())
arch,latency_ms
a,1.5
b,0.75
<BLANKLINE>
>>> t
Table: 2 rows x 2 columns
  arch  latency_ms
  a     1.5
  b     0.75
>>> Table.from_rows([], columns=["arch", "score"]).columns
['arch', 'score']
"""
from __future__ import annotations

import csv
import io
import os
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from .atomic import write_text_atomically, writing
from .errors import InputError, MissingExtraError, ParameterError, UnknownNameError

__all__ = ["Table"]

#: what the repr shows: the first rows, each cell cut to a width
REPR_ROWS, REPR_WIDTH = 5, 24


class Table:
    """Named 1-D columns of equal length (see the module docstring): ``Table({"name": values, ...})``; rows
    (dicts) go to :meth:`from_rows`.

    >>> t = Table({"arch": ["a", "b", "c"], "params": [10, 20, 30]})
    >>> len(t), t.columns, int(t["params"].sum())
    (3, ['arch', 'params'], 60)
    """

    def __init__(self, columns: Mapping[str, Sequence]):
        if not isinstance(columns, Mapping):
            raise ParameterError("columns", "a mapping of column names to 1-D values, e.g. {'arch': [...]}",
                                 type(columns).__name__, fix="rows (dicts) go to Table.from_rows")
        self._cols: dict[str, np.ndarray] = {}
        for name, values in columns.items():
            self._cols[str(name)] = _column(values)
        lengths = {name: len(v) for name, v in self._cols.items()}
        if len(set(lengths.values())) > 1:
            raise InputError(f"table columns must have one length; got {lengths}")

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping], columns: Sequence[str] | None = None) -> "Table":
        """A table of dict rows; ``columns`` (default: the first row's keys, then any new key in order; give
        them for a table that may have no rows)."""
        if isinstance(rows, (str, Mapping)) or not isinstance(rows, Iterable):
            raise ParameterError("rows", "an iterable of dicts (one per row)", type(rows).__name__)
        rows = list(rows)
        bad = [type(row).__name__ for row in rows if not isinstance(row, Mapping)]
        if bad:
            raise ParameterError("rows", "dicts (one per row)", bad[0], fix="columns go to Table({name: values})")
        if columns is None:
            columns = list(dict.fromkeys(k for row in rows for k in row))
        return cls({c: [row.get(c) for row in rows] for c in columns})

    @property
    def columns(self) -> list[str]:
        return list(self._cols)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._cols[name]
        except (KeyError, TypeError):
            raise UnknownNameError("column", name, self._cols) from None

    def __contains__(self, name: object) -> bool:
        return name in self._cols

    def __len__(self) -> int:
        return len(next(iter(self._cols.values()))) if self._cols else 0

    def row(self, i: int) -> dict:
        """Row ``i`` as a dict of Python scalars."""
        return {name: _scalar(col[i]) for name, col in self._cols.items()}

    def __iter__(self) -> Iterator[dict]:
        return (self.row(i) for i in range(len(self)))

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """The table as CSV text (floats exact); also written to ``path`` atomically when given
        (:class:`~zeroshot.errors.InputError` naming it when it cannot be)."""
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise ParameterError("path", "a file path or None (the text only)", type(path).__name__)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows([_cell(col[i]) for col in self._cols.values()] for i in range(len(self)))
        text = buf.getvalue()
        if path is not None:
            with writing(path, "the table"):
                write_text_atomically(text, path)
        return text

    def to_pandas(self):
        """A ``pandas.DataFrame`` of the table (pandas is optional: ``pip install pandas``)."""
        try:
            import pandas as pd
        except ImportError:
            raise MissingExtraError("pandas", "Table.to_pandas") from None
        return pd.DataFrame({name: col for name, col in self._cols.items()})

    def __repr__(self) -> str:
        """The shape, the column names and the first :data:`REPR_ROWS` rows, aligned, long cells cut."""
        shown = min(len(self), REPR_ROWS)
        cells = [self.columns] + [[_brief(col[i]) for col in self._cols.values()] for i in range(shown)]
        cells = [[c if len(c) <= REPR_WIDTH else c[:REPR_WIDTH - 3] + "..." for c in row] for row in cells]
        widths = [max(len(row[j]) for row in cells) for j in range(len(self._cols))]
        lines = [f"Table: {len(self)} rows x {len(self._cols)} columns"]
        if self._cols:
            lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
        if len(self) > shown:
            lines.append(f"  ... {len(self) - shown} more rows")
        return "\n".join(lines)


def _column(values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind in "US" or (arr.dtype == object and all(isinstance(v, str) for v in arr.ravel())):
        arr = np.asarray(values, dtype=object)
    if arr.ndim != 1:
        raise InputError(f"table columns must be 1-D, got shape {arr.shape}")
    return arr


def _scalar(v):
    return v.item() if isinstance(v, np.generic) else v


def _cell(v) -> str:
    """A CSV cell: floats as their shortest text that reads back exactly (``repr``), None empty."""
    v = _scalar(v)
    if isinstance(v, float):
        return repr(v)
    return "" if v is None else str(v)


def _brief(v) -> str:
    """A cell of the repr: floats to 6 significant digits, whole ones (counts) whole."""
    v = _scalar(v)
    if isinstance(v, float):
        return f"{v:.0f}" if v.is_integer() and abs(v) < 1e15 else f"{v:.6g}"
    return _cell(v)
