"""Results as tables: named columns of equal length, one row per input, in input order.

``t["col"]`` is a 1-D numpy array; ``len(t)`` the number of rows; ``t.columns`` the names in order;
iterating gives one dict per row (Python scalars); ``t.to_csv(path)`` writes it, ``t.to_pandas()`` gives a
DataFrame where pandas is installed (an optional extra).

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
"""
from __future__ import annotations

import csv
import io
import os
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from .atomic import write_text_atomically
from .errors import InputError, MissingExtraError, UnknownNameError

__all__ = ["Table"]


class Table:
    """Named 1-D columns of equal length (see the module docstring)."""

    def __init__(self, columns: Mapping[str, Sequence]):
        self._cols: dict[str, np.ndarray] = {}
        for name, values in columns.items():
            self._cols[str(name)] = _column(values)
        lengths = {name: len(v) for name, v in self._cols.items()}
        if len(set(lengths.values())) > 1:
            raise InputError(f"table columns must have one length; got {lengths}")

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping], columns: Sequence[str] | None = None) -> "Table":
        """A table of dict rows; ``columns`` (default: the first row's keys, then any new key in order)."""
        rows = list(rows)
        if columns is None:
            columns = list(dict.fromkeys(k for row in rows for k in row))
        return cls({c: [row.get(c) for row in rows] for c in columns})

    @property
    def columns(self) -> list[str]:
        return list(self._cols)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._cols[name]
        except KeyError:
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
        """The table as CSV text; also written to ``path`` atomically when given."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows([_cell(col[i]) for col in self._cols.values()] for i in range(len(self)))
        text = buf.getvalue()
        if path is not None:
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
        head = [", ".join(f"{k}={_cell(v)}" for k, v in self.row(i).items()) for i in range(min(len(self), 3))]
        more = f", ... ({len(self)} rows)" if len(self) > 3 else ""
        return f"Table({len(self)} rows: {'; '.join(head)}{more})"


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
    v = _scalar(v)
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else str(v)
