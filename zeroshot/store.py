"""SQLite results store of screening and search runs (a file, no server).

One row per candidate: run id, encoding, the stage it reached and every metric computed for it (one
column per metric, added as metrics appear).  Each chunk of candidates is written with its completion
marker in a single transaction, so a run killed at any moment (even SIGKILL) resumes from its last complete
chunk and never holds a duplicate or a half-written row.  A database written by another space or by a newer
schema is refused.

Example
-------
>>> import tempfile, os
>>> store = ResultStore(os.path.join(tempfile.mkdtemp(), "r.db"), space="nb201")
>>> run = store.new_run({"seed": 0})
>>> store.write_chunk(run, 0, [("a", 2, {"score": 1.5})])
>>> store.top(run, "score", 1)[0]["arch"]
'a'
"""
from __future__ import annotations

import json
import re
import sqlite3
import time
from typing import Iterable, Sequence

from .errors import StoreError

SCHEMA_VERSION = 1
_COLUMN = re.compile(r"^[a-z_][a-z0-9_]*$")
_FIXED = ("run_id", "arch", "stage")


class ResultStore:
    def __init__(self, path: str, space: str, space_options: dict | None = None):
        self.path = path
        self.db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.row_factory = sqlite3.Row
        with self._tx():
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
            if not meta:
                self.db.executemany("INSERT INTO meta VALUES (?, ?)", [
                    ("schema_version", str(SCHEMA_VERSION)), ("space", space),
                    ("space_options", json.dumps(space_options or {}, sort_keys=True))])
                self.db.execute("""CREATE TABLE runs (run_id INTEGER PRIMARY KEY, created REAL, kind TEXT,
                                   config TEXT, status TEXT, summary TEXT)""")
                self.db.execute("""CREATE TABLE chunks (run_id INTEGER, chunk INTEGER, stage INTEGER,
                                   n INTEGER, PRIMARY KEY (run_id, chunk, stage))""")
                self.db.execute("""CREATE TABLE candidates (run_id INTEGER, arch TEXT, stage INTEGER,
                                   PRIMARY KEY (run_id, arch))""")
            else:
                if int(meta.get("schema_version", 0)) > SCHEMA_VERSION:
                    raise StoreError(f"{path} was written by a newer zeroshot (schema "
                                     f"{meta['schema_version']} > {SCHEMA_VERSION}); upgrade zeroshot or use "
                                     f"another --db")
                if meta.get("space") != space:
                    raise StoreError(f"{path} holds results of space {meta.get('space')!r}, not {space!r}; "
                                     f"use another --db")
                stored = json.loads(meta.get("space_options", "{}"))
                if space_options is not None and stored != space_options:
                    raise StoreError(f"{path} holds {space} results with options {stored}, not "
                                     f"{space_options}; use another --db")
        self._columns = self._read_columns()

    # -------------------------------------------------------------- transactions and schema
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

    # -------------------------------------------------------------- runs
    def new_run(self, config: dict, kind: str = "screen") -> int:
        with self._tx():
            cur = self.db.execute("INSERT INTO runs (created, kind, config, status) VALUES (?, ?, ?, ?)",
                                  (time.time(), kind, json.dumps(config, sort_keys=True), "running"))
            return int(cur.lastrowid)

    def run_config(self, run_id: int) -> dict:
        row = self.db.execute("SELECT config FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"{self.path} has no run {run_id}; runs: {self.runs() or 'none'}")
        return json.loads(row["config"])

    def runs(self) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT run_id FROM runs ORDER BY run_id")]

    def last_run(self, kind: str = "screen") -> int:
        row = self.db.execute("SELECT max(run_id) FROM runs WHERE kind = ?", (kind,)).fetchone()
        if row[0] is None:
            raise StoreError(f"{self.path} has no {kind} run to resume")
        return int(row[0])

    def finish_run(self, run_id: int, summary: dict) -> None:
        with self._tx():
            self.db.execute("UPDATE runs SET status = 'done', summary = ? WHERE run_id = ?",
                            (json.dumps(summary, sort_keys=True), run_id))

    def run_summary(self, run_id: int) -> dict:
        row = self.db.execute("SELECT summary FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return json.loads(row["summary"]) if row and row["summary"] else {}

    # -------------------------------------------------------------- chunks of candidates
    def done_chunks(self, run_id: int, stage: int) -> set[int]:
        return {r[0] for r in self.db.execute("SELECT chunk FROM chunks WHERE run_id = ? AND stage = ?",
                                              (run_id, stage))}

    def write_chunk(self, run_id: int, chunk: int, rows: Sequence[tuple[str, int, dict]],
                    stage_marker: int = 1, update: bool = True) -> int:
        """Write candidates ``(arch, stage, metrics)`` and mark the chunk done, atomically.

        A candidate already in the run is updated (``update``; its stage only ever grows) or left as it is
        (``update=False``: the first writer of a duplicate wins).  Returns how many rows were new."""
        names = sorted({k for _, _, m in rows for k in m})
        with self._tx():
            self._ensure_columns(names)
            before = self.db.total_changes
            cols = ", ".join(f'"{n}"' for n in names)
            sets = ", ".join(["stage = max(stage, excluded.stage)"] + [f'"{n}" = excluded."{n}"' for n in names])
            sql = (f'INSERT INTO candidates (run_id, arch, stage{", " + cols if cols else ""}) '
                   f'VALUES ({", ".join(["?"] * (3 + len(names)))}) ON CONFLICT (run_id, arch) DO '
                   + (f"UPDATE SET {sets}" if update else "NOTHING"))
            self.db.executemany(sql, [(run_id, a, s, *[_num(m.get(n)) for n in names]) for a, s, m in rows])
            added = self.db.total_changes - before
            self.db.execute("INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?)", (run_id, chunk, stage_marker,
                                                                                  added))
        return added

    def stream(self, run_id: int, columns: str, where: str = "", params: Sequence = (), order: str = ""):
        """Iterate over rows (tuples) without holding them all: constant memory for any run size."""
        sql = f"SELECT {columns} FROM candidates WHERE run_id = ?" + (f" AND ({where})" if where else "")
        cur = self.db.cursor()
        cur.row_factory = None
        yield from cur.execute(sql + (f" ORDER BY {order}" if order else ""), (run_id, *params))

    # -------------------------------------------------------------- queries
    def candidates(self, run_id: int, where: str = "", params: Sequence = (), columns: str = "*",
                   order: str = "") -> list[dict]:
        sql = f"SELECT {columns} FROM candidates WHERE run_id = ?" + (f" AND ({where})" if where else "")
        if order:
            sql += f" ORDER BY {order}"
        return [dict(r) for r in self.db.execute(sql, (run_id, *params))]

    def count(self, run_id: int, min_stage: int = 0) -> int:
        return self.db.execute("SELECT count(*) FROM candidates WHERE run_id = ? AND stage >= ?",
                               (run_id, min_stage)).fetchone()[0]

    def top(self, run_id: int, metric: str, k: int, min_stage: int = 0, descending: bool = True) -> list[dict]:
        if metric not in self._columns:
            raise StoreError(f"no metric {metric!r} in {self.path}; metrics: {', '.join(self.metrics())}")
        return self.candidates(run_id, f'stage >= ? AND "{metric}" IS NOT NULL', (min_stage,),
                               order=f'"{metric}" {"DESC" if descending else "ASC"}, arch LIMIT {int(k)}')

    def metrics(self) -> list[str]:
        return sorted(self._columns - set(_FIXED))

    def close(self) -> None:
        self.db.close()


def _num(v):
    return None if v is None else float(v)
