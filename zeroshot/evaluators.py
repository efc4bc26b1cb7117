"""What a search's evaluations are: accuracies looked up in a table, or real trainings.

An evaluator is called with a list of encodings and returns one dict per encoding holding at least
``accuracy`` (higher is better; other numbers are recorded with it); ``covers(encodings)`` says which it
can evaluate at all (the search skips the others as it skips infeasible ones).  A custom evaluator (a
benchmark's own training, say) is any object with these two methods.

Example
-------
>>> ev = DictEvaluator({"a": 71.5, "b": 64.0})
>>> ev.covers(["a", "c"]).tolist(), ev(["b"])
([True, False], [{'accuracy': 64.0}])
"""
from __future__ import annotations

import csv
from typing import Sequence

import numpy as np

from .errors import DataError, ParameterError

__all__ = ["DictEvaluator", "OracleEvaluator", "TrainingEvaluator"]


class DictEvaluator:
    """Accuracies from a dict ``{canonical encoding: accuracy}``; architectures it lacks are skipped by
    the search like infeasible ones.  Evaluating is free (a lookup) and costs one unit of budget."""

    def __init__(self, table: dict[str, float], source: str = "the table"):
        self.table, self.source = table, source

    def covers(self, archs: Sequence[str]) -> np.ndarray:
        return np.array([a in self.table for a in archs], dtype=bool)

    def __call__(self, archs: Sequence[str]) -> list[dict]:
        return [{"accuracy": self.table[a]} for a in archs]


class OracleEvaluator(DictEvaluator):
    """A CSV of known accuracies (``path``): encodings in a column ``arch`` or ``arch_str``, the accuracy
    in ``column``.  Encodings are parsed by ``space`` and keyed by their canonical form."""

    def __init__(self, path: str, column: str | None, space):
        try:
            with open(path, newline="", encoding="utf-8") as f:
                table = _read_oracle(csv.DictReader(f), path, column, space)
        except OSError as e:
            raise DataError(f"cannot read oracle {path}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise DataError(f"oracle {path} is not UTF-8 text; expected a CSV of accuracies with a header "
                            f"row") from None
        if not table:
            raise DataError(f"oracle {path} holds no architectures")
        super().__init__(table, path)


def _read_oracle(reader: csv.DictReader, path: str, column: str, space) -> dict[str, float]:
    """``{canonical encoding: accuracy}`` of an oracle's rows (see :class:`OracleEvaluator`)."""
    header = reader.fieldnames or []
    if not column:
        others = [c for c in header if c not in ("arch", "arch_str", "index")]
        raise ParameterError("column", "the oracle's column holding the accuracy", None,
                             fix=f"the oracle {path} has {', '.join(others) or 'no such column'}")
    key = next((k for k in ("arch", "arch_str") if k in header), None)
    if key is None or column not in header:
        missing = "column 'arch' or 'arch_str'" if key is None else f"column {column!r}"
        raise DataError(f"oracle {path} has no {missing}; its columns: {', '.join(header) or 'none'}")
    table = {}
    for line, row in enumerate(reader, 2):
        if row[key] is None or row[column] is None:
            raise DataError(f"oracle {path} line {line}: fewer fields than the header")
        try:
            arch = space.format(space.parse(row[key]))
            accuracy = float(row[column])
        except ValueError as e:                 # a malformed encoding (EncodingError) or accuracy
            raise DataError(f"oracle {path} line {line}: {e}") from None
        table[arch] = accuracy
    return table


class TrainingEvaluator:
    """Real training of each architecture of ``space`` (a name, with ``space_options``) on ``data`` (an NPZ
    path or image folder), one ``backend`` task per training (:mod:`zeroshot.backends`; default: in this
    process); ``train`` holds :class:`~zeroshot.train.TrainConfig` fields.  On a Ray cluster with GPUs each
    task asks for one GPU and trains on it.  The accuracy is the validation accuracy."""

    def __init__(self, space: str, space_options: dict, data: str | None, train: dict, backend=None):
        from .backends import LocalBackend
        from .train import TrainConfig
        if not data:
            raise ParameterError("data", "a training set (an NPZ or image folder)", None,
                                 fix="a search without an oracle trains for real and needs one")
        TrainConfig(**train).validate()
        self.space, self.space_options, self.data, self.train = space, space_options, data, train
        self.backend = backend or LocalBackend(1)
        self.resources, self.device = {}, train.get("device", "cpu")
        ray = getattr(self.backend, "ray", None)
        if ray is not None and ray.cluster_resources().get("GPU", 0) >= 1:
            self.resources, self.device = {"num_gpus": 1}, "auto"

    def covers(self, archs: Sequence[str]) -> np.ndarray:
        return np.ones(len(archs), dtype=bool)

    def __call__(self, archs: Sequence[str]) -> list[dict]:
        from .train import train_job
        jobs = [{"space": self.space, "space_options": self.space_options, "arch": a, "data": self.data,
                 "config": dict(self.train, device=self.device)} for a in archs]
        out = self.backend.map(train_job, jobs, resources=self.resources)
        return [dict(m, accuracy=m["val_accuracy"]) for m in out]
