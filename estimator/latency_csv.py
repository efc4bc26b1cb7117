"""CSV tables of measured whole-model latency: one architecture per row, latencies in ms per column.

The encoding column is the first of :data:`ARCH_COLUMNS` present; index columns (``index``, ``id``,
``*idx``) are left out; every other column is kept as raw text, and :func:`latency_column` reads one as
positive milliseconds.  :func:`shared_datasets` reads the shared measurements (``hw/<space>_latency.csv``)
that the calibration prior is built from.

Example
-------
>>> import os, tempfile
>>> from zeroshot.spaces import get_space
>>> space = get_space("nb201")
>>> path = os.path.join(tempfile.mkdtemp(), "m.csv")
>>> with open(path, "w") as f:
...     _ = f.write("index,arch,gpu_ms\\n0," + space.sample(1, seed=0)[0] + ",2.5\\n")
>>> texts, raw = read_latency_csv(path, space)
>>> numeric_columns(raw), latency_column(raw, "gpu_ms", path).tolist()
(['gpu_ms'], [2.5])
"""
from __future__ import annotations

import csv

import numpy as np

from zeroshot.errors import DataError, EncodingError

__all__ = ["ARCH_COLUMNS", "latency_column", "latency_dataset", "numeric_columns", "read_latency_csv",
           "shared_datasets"]

ARCH_COLUMNS = ("arch", "arch_str", "op_names")      # accepted names of the encoding column


def read_latency_csv(path, space) -> tuple[list[str], dict[str, list[str]]]:
    """Canonical encodings and the other columns (raw text) of a CSV of measured architectures (with
    ``space=None``: the architecture column as written, e.g. the names of users' own networks).

    Raises :class:`~zeroshot.errors.DataError` when the file cannot be read, is not UTF-8 text or has no
    architecture column, :class:`~zeroshot.errors.EncodingError` naming the row of a bad encoding.
    """
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return _read_rows(csv.DictReader(f), path, space)
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text; expected a CSV of measurements with a header row") from None


def _read_rows(reader: csv.DictReader, path, space) -> tuple[list[str], dict[str, list[str]]]:
    header = reader.fieldnames or []
    arch_col = next((c for c in ARCH_COLUMNS if c in header), None)
    if arch_col is None:
        raise DataError(f"{path}: no architecture column; expected one of {', '.join(ARCH_COLUMNS)}, "
                        f"got columns {', '.join(header) or '(none)'}")
    value_cols = [c for c in header if c not in ARCH_COLUMNS and not _is_index(c)]
    texts, raw = [], {c: [] for c in value_cols}
    for row_no, row in enumerate(reader, start=2):
        try:
            texts.append(row[arch_col] if space is None else space.format(space.parse(row[arch_col] or "")))
        except EncodingError as e:
            raise EncodingError(f"{path} row {row_no}: {e}") from None
        for c in value_cols:
            raw[c].append(row[c])
    return texts, raw


def numeric_columns(raw: dict[str, list[str]]) -> list[str]:
    """Names of the columns of :func:`read_latency_csv` where some value is a number."""
    return [c for c, v in raw.items() if any(_is_float(x) for x in v)]


def latency_column(raw: dict[str, list[str]], column: str, path) -> np.ndarray:
    """Column ``column`` as positive milliseconds; :class:`~zeroshot.errors.DataError` names the first bad
    row."""
    out = np.empty(len(raw[column]))
    for i, x in enumerate(raw[column]):
        value = float(x) if _is_float(x) else np.nan
        if not np.isfinite(value) or value <= 0:
            raise DataError(f"{path} row {i + 2}: column {column!r} must hold a positive latency in ms, "
                            f"got {x!r}")
        out[i] = value
    return out


def _is_float(x) -> bool:
    try:
        float(x)
    except (TypeError, ValueError):
        return False
    return True


def _is_index(column: str) -> bool:
    low = column.lower()
    return low in ("index", "id", "") or low.endswith("idx")


def latency_dataset(path, space) -> tuple:
    """``(space, encodings, {device: latencies})`` of a latency CSV of ``space``: every ``*_ms`` column a
    device."""
    texts, raw = read_latency_csv(path, space)
    return space, texts, {c: latency_column(raw, c, path) for c in raw if c.endswith("_ms")}


def shared_datasets(names=("nb201", "fbnet")):
    """:func:`latency_dataset` of the shared measurements (``hw/<space>_latency.csv``) that are present."""
    from zeroshot.spaces import get_space
    from zeroshot.spaces.shared_data import shared_data

    paths = {name: shared_data(f"hw/{name}_latency.csv") for name in names}
    return [latency_dataset(path, get_space(name)) for name, path in paths.items() if path is not None]
