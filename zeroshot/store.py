"""SQLite results store of screening, search and training runs (a file, or ``":memory:"``; no server).

One row per candidate: run id, encoding, the stage it reached and every metric computed for it (one
column per metric, added as metrics appear).  Each chunk of candidates is written with its completion
marker in a single transaction, so a run killed at any moment (even SIGKILL) resumes from its last complete
chunk and never holds a duplicate or a half-written row.  A database written by another space or by a newer
schema is refused.

Stages belong to the kind of run (:data:`STAGES`): callers name them (``"passed"`` of a screen,
``"evaluated"`` of a search), a name of another kind is refused, and the number stored for a row is its
position among its own run kind's stages (the layout of every database written so far).  Callers never
write SQL: the store answers what they need (:meth:`~ResultStore.top`, :meth:`~ResultStore.candidates`,
:meth:`~ResultStore.stream`, :meth:`~ResultStore.front`, :meth:`~ResultStore.counts`).  It is a context
manager that closes the database however the block ends.

Example
-------
>>> with ResultStore(":memory:", space="nb201") as store:
...     run = store.new_run({"seed": 0}, kind="screen")
...     store.write_chunk(run, 0, [("a", "passed", {"score": 1.5, "latency_ms": 2.0}),
...                                ("b", "sampled", {"score": 0.5, "latency_ms": 1.0})])
...     print(store.top(run, "score", 1)[0]["arch"], store.counts(run), store.front(run, "score"))
2
a {'sampled': 2, 'passed': 1, 'survived': 0, 'scored': 0, 'shortlisted': 0} ['b', 'a']
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from typing import Iterable, Iterator, Sequence, Union

from .errors import StoreError, UnknownNameError
from .pareto import pareto_stream

__all__ = ["STAGES", "SCHEMA_VERSION", "ResultStore"]

SCHEMA_VERSION = 1
#: run kind -> the stages its candidates reach, in order (a row stores its stage's 1-based position)
STAGES = {"screen": ("sampled", "passed", "survived", "scored", "shortlisted"),
          "search": ("scored", "evaluated"),
          "train": ("training", "trained")}
_COLUMN = re.compile(r"^[a-z_][a-z0-9_]*$")
_FIXED = ("run_id", "arch", "stage")
_TABLES = ("""CREATE TABLE runs (run_id INTEGER PRIMARY KEY, created REAL, kind TEXT, config TEXT, status TEXT,
                                 summary TEXT)""",
           "CREATE TABLE chunks (run_id INTEGER, chunk INTEGER, stage INTEGER, n INTEGER, "
           "PRIMARY KEY (run_id, chunk, stage))",
           "CREATE TABLE candidates (run_id INTEGER, arch TEXT, stage INTEGER, PRIMARY KEY (run_id, arch))")

Stage = Union[str, int, None]


class ResultStore:
    """The results database at ``path`` (created if missing) for ``space`` with ``space_options``.

    ``space=None`` opens an existing database whatever its space (:attr:`space` then says which), or a
    new in-memory one for any space; ``space_options=None`` accepts any options."""

    def __init__(self, path: str = ":memory:", space: str | None = None, space_options: dict | None = None):
        self.path = path
        if space is None and path != ":memory:" and not os.path.exists(path):
            raise StoreError(f"{path} does not exist")
        self.db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self._kinds: dict[int, str] = {}
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            with self._tx():
                self.space, self.space_options = self._open_meta(space, space_options)
        except sqlite3.DatabaseError as e:
            self.db.close()
            raise StoreError(f"{path} is not a zeroshot results database ({e})") from None
        except StoreError:
            self.db.close()
            raise
        self._columns = self._read_columns()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    # -------------------------------------------------------------- schema
    def _open_meta(self, space: str | None, space_options: dict | None) -> tuple[str, dict]:
        """Create the tables of a new database, or check an existing one; its (space, options)."""
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        if not meta:
            if space is None and self.path != ":memory:":
                raise StoreError(f"{self.path} is not a zeroshot results database")
            self.db.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("schema_version", str(SCHEMA_VERSION)), ("space", space),
                ("space_options", json.dumps(space_options or {}, sort_keys=True))])
            for sql in _TABLES:
                self.db.execute(sql)
            return space, dict(space_options or {})
        if int(meta.get("schema_version", 0)) > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer zeroshot (schema {meta['schema_version']} > "
                             f"{SCHEMA_VERSION}); upgrade zeroshot or use another database")
        if space is not None and meta.get("space") != space:
            raise StoreError(f"{self.path} holds results of space {meta.get('space')!r}, not {space!r}; "
                             f"use another database")
        stored = json.loads(meta.get("space_options", "{}"))
        if space_options is not None and stored != space_options:
            raise StoreError(f"{self.path} holds {meta['space']} results with options {stored}, not "
                             f"{space_options}; use another database")
        return meta["space"], stored

    def _tx(self):
        db = self.db

        class _Tx:
            def __enter__(self):
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, exc_type, *_):
                db.execute("ROLLBACK" if exc_type else "COMMIT")
        return _Tx()

    def _read_columns(self) -> set[str]:
        return {r[1] for r in self.db.execute("PRAGMA table_info(candidates)")}

    def _ensure_columns(self, names: Iterable[str]) -> None:
        for name in names:
            if name in self._columns:
                continue
            if not _COLUMN.match(name) or name in _FIXED:
                raise StoreError(f"metric name {name!r} cannot be a column (lower-case letters, digits, _)")
            self.db.execute(f'ALTER TABLE candidates ADD COLUMN "{name}" REAL')
            self._columns.add(name)

    def _column(self, name: str) -> str:
        """``name`` quoted as a column of the candidates (StoreError naming the metrics if there is none)."""
        if name not in self._columns:
            self._columns = self._read_columns()          # another writer may have added it
            if name not in self._columns:
                raise StoreError(f"no metric {name!r} in {self.path}; metrics: {', '.join(self.metrics())}")
        return f'"{name}"'

    def metrics(self) -> list[str]:
        """Names of the metric columns, sorted."""
        return sorted(self._columns - set(_FIXED))

    # -------------------------------------------------------------- runs
    def new_run(self, config: dict, kind: str = "screen") -> int:
        """Start a run of ``kind`` (a key of :data:`STAGES`) with its ``config``; its id."""
        if kind not in STAGES:
            raise UnknownNameError("run kind", kind, STAGES)
        with self._tx():
            cur = self.db.execute("INSERT INTO runs (created, kind, config, status) VALUES (?, ?, ?, ?)",
                                  (time.time(), kind, json.dumps(config, sort_keys=True), "running"))
        self._kinds[int(cur.lastrowid)] = kind
        return int(cur.lastrowid)

    def _run_field(self, run_id: int, name: str):
        row = self.db.execute(f"SELECT {name} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"{self.path} has no run {run_id}; runs: {self.runs() or 'none'}")
        return row[0]

    def run_config(self, run_id: int) -> dict:
        return json.loads(self._run_field(run_id, "config"))

    def run_kind(self, run_id: int) -> str:
        if run_id not in self._kinds:
            self._kinds[run_id] = self._run_field(run_id, "kind")
        return self._kinds[run_id]

    def run_summary(self, run_id: int) -> dict:
        """The summary of a finished run (``{}`` while it runs)."""
        summary = self._run_field(run_id, "summary")
        return json.loads(summary) if summary else {}

    def runs(self, kind: str | None = None) -> list[int]:
        """Run ids (of ``kind``, or every kind), increasing."""
        sql, params = "SELECT run_id FROM runs", ()
        if kind is not None:
            sql, params = sql + " WHERE kind = ?", (kind,)
        return [r[0] for r in self.db.execute(sql + " ORDER BY run_id", params)]

    def last_run(self, kind: str = "screen") -> int:
        runs = self.runs(kind)
        if not runs:
            raise StoreError(f"{self.path} has no {kind} run")
        return runs[-1]

    def finish_run(self, run_id: int, summary: dict) -> None:
        with self._tx():
            self.db.execute("UPDATE runs SET status = 'done', summary = ? WHERE run_id = ?",
                            (json.dumps(summary, sort_keys=True), run_id))

    # -------------------------------------------------------------- stages
    def stages(self, run_id: int) -> tuple[str, ...]:
        """The stages of the run's kind, in order."""
        kind = self.run_kind(run_id)
        if kind not in STAGES:
            raise StoreError(f"run {run_id} of {self.path} is a {kind!r} run, whose stages this zeroshot "
                             f"does not know; upgrade zeroshot")
        return STAGES[kind]

    def _stage_numbers(self, run_id: int) -> dict:
        names = self.stages(run_id)
        return {**{name: i for i, name in enumerate(names, 1)}, **{i: i for i in range(1, len(names) + 1)}}

    def _stage(self, run_id: int, stage: Stage) -> int:
        """The stored number of ``stage`` (a name of the run kind's stages, or its 1-based position; None: 0,
        every stage)."""
        if stage is None:
            return 0
        numbers = self._stage_numbers(run_id)
        if isinstance(stage, bool) or stage not in numbers:
            raise StoreError(f"a {self.run_kind(run_id)} run has no stage {stage!r}; its stages: "
                             f"{', '.join(self.stages(run_id))}")
        return numbers[stage]

    # -------------------------------------------------------------- writing
    def done_chunks(self, run_id: int, stage: Stage) -> set[int]:
        """Chunks of the run marked done at ``stage``."""
        return {r[0] for r in self.db.execute("SELECT chunk FROM chunks WHERE run_id = ? AND stage = ?",
                                              (run_id, self._stage(run_id, stage)))}

    def write_chunk(self, run_id: int, chunk: int, rows: Sequence[tuple[str, Stage, dict]],
                    stage_marker: Stage = None, update: bool = True) -> int:
        """Write candidates ``(arch, stage, metrics)`` and mark ``chunk`` done at ``stage_marker`` (default:
        the kind's first stage), atomically.

        A candidate already in the run is updated (``update``; its stage only ever grows) or left as it is
        (``update=False``: the first writer of a duplicate wins).  Returns how many rows were new."""
        numbers = self._stage_numbers(run_id)
        marker = self._stage(run_id, 1 if stage_marker is None else stage_marker)
        names = sorted({k for _, _, m in rows for k in m})
        values = [(run_id, a, numbers[s] if s in numbers else self._stage(run_id, s),
                   *[_num(m.get(n)) for n in names]) for a, s, m in rows]
        cols = "".join(f', "{n}"' for n in names)
        sets = ", ".join(["stage = max(stage, excluded.stage)"] + [f'"{n}" = excluded."{n}"' for n in names])
        try:
            with self._tx():
                self._ensure_columns(names)
                before = self.db.total_changes
                self.db.executemany(f'INSERT INTO candidates (run_id, arch, stage{cols}) VALUES '
                                    f'({", ".join(["?"] * (3 + len(names)))}) ON CONFLICT (run_id, arch) DO '
                                    + (f"UPDATE SET {sets}" if update else "NOTHING"), values)
                added = self.db.total_changes - before
                self.db.execute("INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?)", (run_id, chunk, marker, added))
        except BaseException:
            self._columns = self._read_columns()          # columns added in the rolled-back transaction are gone
            raise
        return added

    # -------------------------------------------------------------- reading
    def _select(self, run_id: int, columns: Sequence[str] | None, min_stage: Stage, has: Sequence[str],
                order: Sequence[str] = ()) -> tuple[str, tuple]:
        cols = "*" if columns is None else ", ".join(self._column(c) if c not in _FIXED else c for c in columns)
        where = "".join(f" AND {self._column(h)} IS NOT NULL" for h in has)
        sql = f"SELECT {cols} FROM candidates WHERE run_id = ? AND stage >= ?{where}"
        return sql + (f" ORDER BY {', '.join(order)}" if order else ""), (run_id, self._stage(run_id, min_stage))

    def candidates(self, run_id: int, min_stage: Stage = None, *, has: str | Sequence[str] = (),
                   columns: Sequence[str] | None = None) -> list[dict]:
        """Rows (dicts, by encoding) of the run's candidates that reached ``min_stage`` and have every
        metric of ``has``; all ``columns`` unless named."""
        sql, params = self._select(run_id, columns, min_stage, _names(has), order=("arch",))
        return [dict(r) for r in self.db.execute(sql, params)]

    def top(self, run_id: int, metric: str, k: int, min_stage: Stage = None, descending: bool = True,
            columns: Sequence[str] | None = None) -> list[dict]:
        """The ``k`` rows best by ``metric`` (highest unless not ``descending``; ties by encoding) among the
        candidates that reached ``min_stage`` and have it."""
        order = (f'{self._column(metric)} {"DESC" if descending else "ASC"}', "arch")
        sql, params = self._select(run_id, columns, min_stage, (metric,), order)
        return [dict(r) for r in self.db.execute(sql + " LIMIT ?", (*params, int(k)))]

    def stream(self, run_id: int, columns: Sequence[str], min_stage: Stage = None, *,
               has: str | Sequence[str] = ()) -> Iterator[tuple]:
        """Tuples of ``columns`` of the candidates that reached ``min_stage`` and have every metric of
        ``has``, in the order they were written, without holding them all (constant memory)."""
        sql, params = self._select(run_id, columns, min_stage, _names(has))
        cur = self.db.cursor()
        cur.row_factory = None
        yield from cur.execute(sql, params)

    def front(self, run_id: int, score: str, cost: str = "latency_ms", min_stage: Stage = None) -> list[str]:
        """Encodings on the Pareto front of (higher ``score``, lower ``cost``) among the candidates that
        reached ``min_stage``, by increasing cost (:func:`~zeroshot.pareto.pareto_stream`, streamed)."""
        order = (f"{self._column(cost)} ASC", f"{self._column(score)} DESC", "arch")
        sql, params = self._select(run_id, ("arch", score), min_stage, (score, cost), order)
        cur = self.db.cursor()
        cur.row_factory = None
        return list(pareto_stream(cur.execute(sql, params)))

    def count(self, run_id: int, min_stage: Stage = None) -> int:
        """How many candidates of the run reached ``min_stage`` (every candidate: None)."""
        return self.db.execute("SELECT count(*) FROM candidates WHERE run_id = ? AND stage >= ?",
                               (run_id, self._stage(run_id, min_stage))).fetchone()[0]

    def counts(self, run_id: int) -> dict[str, int]:
        """Stage name -> how many candidates of the run reached it, for every stage of its kind."""
        return {name: self.count(run_id, name) for name in self.stages(run_id)}


def _names(names: str | Sequence[str]) -> tuple[str, ...]:
    return (names,) if isinstance(names, str) else tuple(names)


def _num(v):
    return None if v is None else float(v)
