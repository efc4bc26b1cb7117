"""SQLite results store of screening, search and training runs (a file, or ``":memory:"``; no server).

Two layouts of the same candidates.  Rows (:meth:`~ResultStore.write_chunk`): run id, encoding, the stage
it reached and every metric computed for it (one column per metric, added as metrics appear); what search,
training and a screen's later stages write.  Blocks (:meth:`~ResultStore.write_codes`): a whole chunk of a
screen's stages 1-2 as columns (the code vectors in the narrowest integer type, one float array per metric,
the stage), one SQL row per column: no encoding is formatted and no per-candidate row is inserted, so the
store keeps up with the costing.  A block candidate written again as a row (a survivor) moves to the rows
with its metrics; readers see one candidate either way, and format the encodings of the block candidates
they return (the space's ``format``).  Each chunk of candidates is written with its completion marker in a
single transaction (WAL journal, ``synchronous=NORMAL``: a killed process loses nothing committed), so a
run killed at any moment (even SIGKILL) resumes from its last complete chunk and never holds a duplicate
or a half-written row.  A database written by another space or by a newer schema is refused; one of
schema 1 (rows only) is read and written as it is.

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
>>> codes = np.array([[0, 1, 2, 3, 4, 0], [4, 4, 4, 4, 4, 4], [0, 1, 2, 3, 4, 0]])    # nb201 cells
>>> with ResultStore(":memory:", space="nb201") as store:
...     run = store.new_run({}, kind="screen")
...     store.write_codes(run, 0, codes, {"latency_ms": np.array([2.0, 1.0, 2.0])},
...                       {"passed": np.array([True, False, True])}, stage_marker="passed")
...     print(store.count(run), store.top(run, "latency_ms", 1, "passed")[0]["arch"])
2
2 |none~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import time
import urllib.parse
from typing import Iterable, Iterator, Sequence, Union

import numpy as np

from .code_blocks import CodeIndex, PackedCodes, pack_codes, top_with_ties
from .errors import StoreError, UnknownNameError
from .pareto import front_candidates, pareto_stream

__all__ = ["STAGES", "SCHEMA_VERSION", "ResultStore"]

SCHEMA_VERSION = 2            # 2: blocks (and links of block candidates written again as rows)
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
_BLOCK_TABLES = ("CREATE TABLE IF NOT EXISTS blocks (run_id INTEGER, chunk INTEGER, name TEXT, dtype TEXT, "
                 "width INTEGER, data BLOB, PRIMARY KEY (run_id, chunk, name))",
                 "CREATE TABLE IF NOT EXISTS links (run_id INTEGER, chunk INTEGER, pos INTEGER, arch TEXT, "
                 "PRIMARY KEY (run_id, chunk, pos))")
# block columns besides the metrics (never a metric's name): PackedCodes' fields, the stage
_CODES, _OFFSET, _SCALE, _HASH, _STAGE = "@codes", "@offset", "@scale", "@hash", "@stage"

Stage = Union[str, int, None]


#: the first bytes of every SQLite database file
_SQLITE_HEADER = b"SQLite format 3\x00"


class ResultStore:
    """The results database at ``path`` (created if missing) for ``space`` with ``space_options``.

    ``space=None`` opens an existing database whatever its space (:attr:`space` then says which), or a
    new in-memory one for any space; ``space_options=None`` accepts any options.  ``readonly`` opens an
    existing database for reading only (the store writes nothing into it, not even a schema).  Used
    as a context manager, a database file the store created is removed again when the block ends in an
    error before any run was started in it (a refused command leaves no file behind)."""

    def __init__(self, path: str = ":memory:", space: str | None = None, space_options: dict | None = None,
                 *, readonly: bool = False):
        self.path, self.readonly = path, readonly
        in_memory = path == ":memory:"
        if (space is None or readonly) and not in_memory and not os.path.exists(path):
            raise StoreError(f"{path} does not exist")
        self._created = not in_memory and not os.path.exists(path)
        self.db = _connect(path, readonly)
        self.db.row_factory = sqlite3.Row
        self._kinds: dict[int, str] = {}
        self._indexes: dict[int, CodeIndex] = {}          # run -> its block candidates by code hash
        self._space_object = None
        try:
            if not readonly:
                self.db.execute("PRAGMA page_size=65536")      # a new file's: blocks are large blobs
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

    def __exit__(self, exc_type, *_) -> None:
        unused = exc_type is not None and self._created and not self.runs()
        self.close()
        if unused:
            os.remove(self.path)

    def close(self) -> None:
        self.db.close()

    # -------------------------------------------------------------- schema
    def _open_meta(self, space: str | None, space_options: dict | None) -> tuple[str, dict]:
        """Create the tables of a new database, or check an existing one; its (space, options)."""
        has_meta = self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
        meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall()) if has_meta else {}
        if not meta:
            if self.readonly or (space is None and self.path != ":memory:"):
                raise StoreError(f"{self.path} is not a zeroshot results database")
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self.db.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("schema_version", str(SCHEMA_VERSION)), ("space", space),
                ("space_options", json.dumps(space_options or {}, sort_keys=True))])
            for sql in _TABLES + _BLOCK_TABLES:
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
        if int(meta.get("schema_version", 0)) < SCHEMA_VERSION:       # schema 1: rows only, a subset
            for sql in _BLOCK_TABLES:                                   # read-only: empty ones in memory
                self.db.execute(sql.replace("CREATE TABLE", "CREATE TEMP TABLE") if self.readonly else sql)
            if not self.readonly:
                self.db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
        return meta["space"], stored

    def _tx(self):
        db, readonly = self.db, self.readonly

        class _Tx:
            def __enter__(self):
                db.execute("BEGIN" if readonly else "BEGIN IMMEDIATE")

            def __exit__(self, exc_type, *_):
                db.execute("ROLLBACK" if exc_type else "COMMIT")
        return _Tx()

    @property
    def columns(self) -> list[str]:
        """The candidates' columns: run, encoding and stage, then every metric stored so far."""
        return list(self._columns)

    def _read_columns(self) -> list[str]:
        """The candidates' columns, in table order."""
        return [r[1] for r in self.db.execute("PRAGMA table_info(candidates)")]

    def _ensure_columns(self, names: Iterable[str]) -> None:
        for name in names:
            if name in self._columns:
                continue
            if not _COLUMN.match(name) or name in _FIXED:
                raise StoreError(f"metric name {name!r} cannot be a column (lower-case letters, digits, _)")
            self.db.execute(f'ALTER TABLE candidates ADD COLUMN "{name}" REAL')
            self._columns.append(name)

    def _column(self, name: str) -> str:
        """``name`` quoted as a column of the candidates (StoreError naming the metrics if there is none)."""
        if name not in self._columns:
            self._columns = self._read_columns()          # another writer may have added it
            if name not in self._columns:
                raise StoreError(f"no metric {name!r} in {self.path}; metrics: {', '.join(self.metrics())}")
        return f'"{name}"'

    def metrics(self) -> list[str]:
        """Names of the metric columns, sorted."""
        return sorted(set(self._columns) - set(_FIXED))

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

    def check_run(self, run_id) -> None:
        """A :class:`~zeroshot.errors.StoreError` listing the database's runs (and their kinds) unless it
        holds run ``run_id``."""
        runs = self.runs()
        if run_id not in runs:
            held = ", ".join(f"{r} ({self.run_kind(r)})" for r in runs) or "none"
            raise StoreError(f"{self.path} has no run {run_id}; runs in this database: {held}")

    def _run_field(self, run_id: int, name: str):
        row = self.db.execute(f"SELECT {name} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            self.check_run(run_id)
        return row[0]

    def run_config(self, run_id: int) -> dict:
        return json.loads(self._run_field(run_id, "config"))

    def run_kind(self, run_id: int) -> str:
        if run_id not in self._kinds:
            self._kinds[run_id] = self._run_field(run_id, "kind")
        return self._kinds[run_id]

    def run_status(self, run_id: int) -> str:
        """``"done"`` once the run finished, else ``"running"`` (still running, or stopped by an error)."""
        return self._run_field(run_id, "status")

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
        (``update=False``: the first writer of a duplicate wins); one of a block moves to the rows with its
        block's metrics.  Returns how many rows were new."""
        numbers = self._stage_numbers(run_id)
        marker = self._stage(run_id, 1 if stage_marker is None else stage_marker)
        values = [(a, numbers[s] if s in numbers else self._stage(run_id, s), m) for a, s, m in rows]
        try:
            with self._tx():
                moved = self._move_from_blocks(run_id, values, update)
                names = sorted({k for _, _, m in values for k in m})
                self._ensure_columns(names)
                cols = "".join(f', "{n}"' for n in names)
                sets = ", ".join(["stage = max(stage, excluded.stage)"] + [f'"{n}" = excluded."{n}"' for n in names])
                before = self.db.total_changes
                self.db.executemany(f'INSERT INTO candidates (run_id, arch, stage{cols}) VALUES '
                                    f'({", ".join(["?"] * (3 + len(names)))}) ON CONFLICT (run_id, arch) DO '
                                    + (f"UPDATE SET {sets}" if update else "NOTHING"),
                                    [(run_id, a, s, *[_num(m.get(n)) for n in names]) for a, s, m in values])
                added = self.db.total_changes - before - moved
                self.db.execute("INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?)", (run_id, chunk, marker, added))
        except BaseException:
            self._columns = self._read_columns()          # columns added in the rolled-back transaction are gone
            raise
        return added

    def write_codes(self, run_id: int, chunk: int, codes: np.ndarray | PackedCodes, metrics: dict[str, np.ndarray],
                    stage: Stage | dict = None, stage_marker: Stage = None) -> int:
        """Write the candidates of one chunk as a block and mark ``chunk`` done at ``stage_marker`` (default:
        the kind's first stage), atomically.

        ``codes``: one row per candidate (or their :func:`~zeroshot.code_blocks.pack_codes`); ``metrics``:
        name -> one value per candidate; ``stage``: the stage of all, or stage -> mask of the candidates that
        reached it (the others at the first stage).  A candidate already in the run (or repeated in
        ``codes``) keeps its first writing.  Returns how many candidates were new."""
        codes = codes if isinstance(codes, PackedCodes) else pack_codes(codes)
        marker = self._stage(run_id, 1 if stage_marker is None else stage_marker)
        stages = self._stage_array(run_id, stage, len(codes))
        order = np.argsort(codes.hashes)
        new = self._code_index(run_id).new_rows(codes, lambda c: self._block_codes(run_id, c), order)
        new &= ~self._in_rows(run_id, codes)
        names = sorted(metrics)
        rows = slice(None) if new.all() else new
        arrays = [(_CODES, codes.values[rows]), (_OFFSET, codes.offset), (_SCALE, codes.scale),
                  (_HASH, codes.hashes[rows]), (_STAGE, stages[rows])] + [
            (n, _narrow(np.asarray(metrics[n], dtype=np.float64)[rows])) for n in names]
        try:
            with self._tx():
                self._ensure_columns(names)
                self.db.executemany("INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?)", [
                    (run_id, chunk, name, a.dtype.str, a.shape[1] if a.ndim > 1 else 0, a.tobytes())
                    for name, a in arrays])
                self.db.execute("INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?)",
                                (run_id, chunk, marker, int(new.sum())))
        except BaseException:
            self._columns = self._read_columns()
            raise
        self._indexes[run_id].insert(codes.hashes[new], chunk, order if new.all() else None)
        return int(new.sum())

    def _stage_array(self, run_id: int, stage: Stage | dict, n: int) -> np.ndarray:
        """The stored stage numbers (uint8) of ``n`` candidates: one stage, or stage -> mask (the highest
        stage whose mask holds; the first stage where none does)."""
        if not isinstance(stage, dict):
            return np.full(n, self._stage(run_id, 1 if stage is None else stage), np.uint8)
        out = np.ones(n, np.uint8)
        for number, mask in sorted((self._stage(run_id, s), m) for s, m in stage.items()):
            out[np.asarray(mask, bool)] = number
        return out

    # -------------------------------------------------------------- blocks
    def _has_blocks(self, run_id: int) -> bool:
        return self.db.execute("SELECT 1 FROM blocks WHERE run_id = ? LIMIT 1", (run_id,)).fetchone() is not None

    def _space(self):
        """The store's space (formats and parses block candidates)."""
        if self._space_object is None:
            if self.space is None:
                raise StoreError("a store of candidate codes needs its space; open it with space=")
            from zeroshot.spaces import get_space
            self._space_object = get_space(self.space, **self.space_options)
        return self._space_object

    def _block_codes(self, run_id: int, chunk: int) -> PackedCodes:
        arrays = next(self._blocks(run_id, (_CODES, _OFFSET, _SCALE, _HASH), chunk))[1]
        return PackedCodes(arrays[_CODES], arrays[_OFFSET], arrays[_SCALE], arrays[_HASH])

    def _code_index(self, run_id: int) -> CodeIndex:
        """The run's block candidates by code hash (built from the store once per run)."""
        if run_id not in self._indexes:
            index = CodeIndex()
            for chunk, arrays in self._blocks(run_id, (_HASH,)):
                index.insert(arrays[_HASH], chunk)
            self._indexes[run_id] = index
        return self._indexes[run_id]

    def _in_rows(self, run_id: int, codes: PackedCodes) -> np.ndarray:
        """Mask of the ``codes`` that the run holds as rows written before any block of theirs."""
        archs = [r[0] for r in self.db.execute(
            "SELECT arch FROM candidates c WHERE run_id = ? AND NOT EXISTS (SELECT 1 FROM links l WHERE "
            "l.run_id = c.run_id AND l.arch = c.arch)", (run_id,))]
        if not archs:
            return np.zeros(len(codes), bool)
        space = self._space()
        rows = {tuple(space.parse(a).tolist()) for a in archs}
        return np.array([tuple(c) in rows for c in codes.unpack().tolist()], bool)

    def _move_from_blocks(self, run_id: int, values: list, update: bool) -> int:
        """Rows ``(arch, stage, metrics)`` about to be written whose candidate lies in a block (and not yet
        in the rows) take its block's stage and metrics beneath theirs, and the block's entry is linked to
        the row (readers then skip it); with ``update=False`` they are dropped (the block wrote first).
        Edits ``values`` in place; how many rows moved."""
        if not values or not self._has_blocks(run_id):
            return 0
        archs = [a for a, _, _ in values]
        present = {r[0] for s in range(0, len(archs), 10_000) for r in self.db.execute(       # bound variables
            f"SELECT arch FROM candidates WHERE run_id = ? AND arch IN ({', '.join('?' * len(archs[s:s + 10_000]))})",
            (run_id, *archs[s:s + 10_000]))}
        fresh = [i for i, (a, _, _) in enumerate(values) if a not in present]
        if not fresh:
            return 0
        space = self._space()
        codes = pack_codes(np.array([space.parse(values[i][0]) for i in fresh], np.int64))
        chunks, positions = self._code_index(run_id).find(codes, lambda c: self._block_codes(run_id, c))
        found = [(i, int(c), int(p)) for i, c, p in zip(fresh, chunks, positions) if c >= 0]
        if not update:
            for i, _, _ in reversed(found):
                del values[i]
            return 0
        for chunk in {c for _, c, _ in found}:
            here = [(i, p) for i, c, p in found if c == chunk]
            records = self._block_records(run_id, chunk, np.array([p for _, p in here]))
            for (i, _), block in zip(here, records):
                arch, stage, metrics = values[i]
                values[i] = (arch, max(stage, block.pop(_STAGE)), {**block, **metrics})
        self.db.executemany("INSERT INTO links VALUES (?, ?, ?, ?)",
                            [(run_id, c, p, values[i][0]) for i, c, p in found])
        return len(found)

    def _block_records(self, run_id: int, chunk: int, positions: np.ndarray) -> list[dict]:
        """Stage and metrics of block candidates (metrics NaN: None)."""
        columns = {}
        for name, dtype, width, data in self.db.execute(
                "SELECT name, dtype, width, data FROM blocks WHERE run_id = ? AND chunk = ? AND name NOT IN "
                "(?, ?, ?, ?)", (run_id, chunk, _CODES, _OFFSET, _SCALE, _HASH)):
            columns[name] = [None if v != v else v for v in _array(name, dtype, width, data)[positions].tolist()]
        return [dict(zip(columns, values)) for values in zip(*columns.values())]

    def _blocks(self, run_id: int, names: Iterable[str], chunk: int | None = None) -> Iterator[tuple[int, dict]]:
        """``(chunk, {name: array})`` of each block of the run (or of block ``chunk``), by chunk, one block at
        a time; a metric a block lacks is NaN."""
        names = tuple(names)
        only = "" if chunk is None else f" AND chunk = {int(chunk)}"
        cur = self.db.execute(f"SELECT chunk, name, dtype, width, data FROM blocks WHERE run_id = ?{only} AND name "
                              f"IN ({', '.join('?' * len(names))}) ORDER BY chunk", (run_id, *names))
        chunk, arrays = None, {}
        for c, name, dtype, width, data in cur:
            if c != chunk and arrays:
                yield chunk, _complete(arrays, names)
                arrays = {}
            chunk, arrays[name] = c, _array(name, dtype, width, data)
        if arrays:
            yield chunk, _complete(arrays, names)

    def _selected(self, run_id: int, min_stage: Stage, has: Sequence[str], names: Sequence[str]
                  ) -> Iterator[tuple[int, np.ndarray, dict]]:
        """``(chunk, positions, arrays)`` per block: the positions of its candidates that reached
        ``min_stage``, have every metric of ``has`` and were not moved to the rows."""
        for h in has:
            self._column(h)
        stage = self._stage(run_id, min_stage)
        moved: dict[int, list[int]] = {}
        for c, p in self.db.execute("SELECT chunk, pos FROM links WHERE run_id = ?", (run_id,)):
            moved.setdefault(c, []).append(p)
        for chunk, arrays in self._blocks(run_id, (_STAGE, *has, *names)):
            ok = arrays[_STAGE] >= stage
            for h in has:
                ok &= ~np.isnan(arrays[h])
            ok[moved.get(chunk, [])] = False
            yield chunk, np.flatnonzero(ok), arrays

    def _archs(self, run_id: int, chunk: int, positions: np.ndarray) -> list[str]:
        """Encodings of block candidates."""
        space = self._space()
        return [space.format(c) for c in self._block_codes(run_id, chunk).unpack(positions)]

    def _block_rows(self, run_id: int, chunk: int, positions: np.ndarray, arrays: dict,
                    columns: Sequence[str]) -> list[tuple]:
        """Tuples of ``columns`` of block candidates, as the rows' SQL would give them."""
        out = []
        for name in columns:
            if name == "arch":
                out.append(self._archs(run_id, chunk, positions))
            elif name == "run_id":
                out.append([run_id] * len(positions))
            elif name == "stage":
                out.append(arrays[_STAGE][positions].tolist())
            else:
                v = arrays[name][positions]
                out.append([None if x != x else x for x in v.tolist()])
        return list(zip(*out))

    # -------------------------------------------------------------- reading
    def _select(self, run_id: int, columns: Sequence[str] | None, min_stage: Stage, has: Sequence[str],
                order: Sequence[str] = ()) -> tuple[str, tuple]:
        cols = "*" if columns is None else ", ".join(self._column(c) if c not in _FIXED else c for c in columns)
        where = "".join(f" AND {self._column(h)} IS NOT NULL" for h in has)
        sql = f"SELECT {cols} FROM candidates WHERE run_id = ? AND stage >= ?{where}"
        return sql + (f" ORDER BY {', '.join(order)}" if order else ""), (run_id, self._stage(run_id, min_stage))

    def _columns_of(self, columns: Sequence[str] | None) -> list[str]:
        """The columns a reader returns (None: all, as the candidates table orders them)."""
        if columns is None:
            return list(self._read_columns())
        for c in columns:
            if c not in _FIXED:
                self._column(c)
        return list(columns)

    def candidates(self, run_id: int, min_stage: Stage = None, *, has: str | Sequence[str] = (),
                   columns: Sequence[str] | None = None) -> list[dict]:
        """Rows (dicts, by encoding) of the run's candidates that reached ``min_stage`` and have every
        metric of ``has``; all ``columns`` unless named."""
        if not self._has_blocks(run_id):
            sql, params = self._select(run_id, columns, min_stage, _names(has), order=("arch",))
            return [dict(r) for r in self.db.execute(sql, params)]
        columns = self._columns_of(columns)
        rows = [dict(zip(columns, r)) for r in self.stream(run_id, columns, min_stage, has=has)]
        return sorted(rows, key=lambda r: r["arch"]) if "arch" in columns else rows

    def top(self, run_id: int, metric: str, k: int, min_stage: Stage = None, descending: bool = True,
            columns: Sequence[str] | None = None) -> list[dict]:
        """The ``k`` rows best by ``metric`` (highest unless not ``descending``; ties by encoding) among the
        candidates that reached ``min_stage`` and have it."""
        order = (f'{self._column(metric)} {"DESC" if descending else "ASC"}', "arch")
        blocks = self._has_blocks(run_id)
        if blocks:
            columns = self._columns_of(columns)
        wanted = list(dict.fromkeys([*columns, "arch", metric])) if blocks else columns
        sql, params = self._select(run_id, wanted, min_stage, (metric,), order)
        rows = [dict(r) for r in self.db.execute(sql + " LIMIT ?", (*params, int(k)))]
        if not blocks:
            return rows
        for chunk, positions, arrays in self._best_in_blocks(run_id, metric, int(k), min_stage, descending):
            rows += [dict(zip(wanted, r)) for r in self._block_rows(run_id, chunk, positions, arrays, wanted)]
        rows.sort(key=lambda r: ((-r[metric] if descending else r[metric]), r["arch"]))
        return [{c: r[c] for c in columns} for r in rows[: int(k)]]

    def _best_in_blocks(self, run_id: int, metric: str, k: int, min_stage: Stage, descending: bool
                        ) -> list[tuple[int, np.ndarray, dict]]:
        """The block candidates that may be among the ``k`` best by ``metric`` (the k best and their ties),
        per block."""
        pool = []                               # (chunk, positions, arrays), pruned as blocks come
        for chunk, positions, arrays in self._selected(run_id, min_stage, (metric,), ()):
            pool.append((chunk, positions[top_with_ties(arrays[metric][positions], k, descending)], arrays))
            values = np.concatenate([a[metric][p] for _, p, a in pool])
            kept = top_with_ties(values, k, descending)
            bounds = np.cumsum([0] + [len(p) for _, p, _ in pool])
            pool = [(c, p[kept[(kept >= lo) & (kept < hi)] - lo], {metric: a[metric], _STAGE: a[_STAGE]})
                    for (c, p, a), lo, hi in zip(pool, bounds[:-1], bounds[1:])]
        return [(c, p, next(self._blocks(run_id, (_STAGE, *self.metrics()), c))[1]) for c, p, _ in pool if len(p)]

    def stream(self, run_id: int, columns: Sequence[str], min_stage: Stage = None, *,
               has: str | Sequence[str] = ()) -> Iterator[tuple]:
        """Tuples of ``columns`` of the candidates that reached ``min_stage`` and have every metric of
        ``has``, in the order they were written (a block's candidates as their chunk came, before the rows),
        without holding them all (constant memory)."""
        has = _names(has)
        if self._has_blocks(run_id):
            names = [c for c in self._columns_of(columns) if c not in _FIXED]
            for chunk, positions, arrays in self._selected(run_id, min_stage, has, names):
                yield from self._block_rows(run_id, chunk, positions, arrays, columns)
        sql, params = self._select(run_id, columns, min_stage, has)
        cur = self.db.cursor()
        cur.row_factory = None
        yield from cur.execute(sql, params)

    def arrays(self, run_id: int, names: Sequence[str], min_stage: Stage = None, *,
               has: str | Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Columns ``names`` (metrics, and ``stage``: its stored number) of the candidates that reached
        ``min_stage`` and have every metric of ``has``, as float64 arrays (a missing metric NaN) in the order
        of :meth:`stream`: what a plot of a million candidates reads, no encoding formatted (``arch`` is
        refused: :meth:`candidates` gives encodings)."""
        if "arch" in names or "run_id" in names:
            raise StoreError(f"arrays() reads metrics and the stage, not {names!r}; candidates() gives encodings")
        has, names = _names(has), tuple(names)
        parts: dict[str, list] = {n: [] for n in names}
        if self._has_blocks(run_id):
            metrics = [n for n in names if n != "stage"]
            for _, positions, arrays in self._selected(run_id, min_stage, has, metrics):
                for n in names:
                    parts[n].append(arrays[_STAGE if n == "stage" else n][positions])
        sql, params = self._select(run_id, names, min_stage, has)
        rows = np.array(self.db.execute(sql, params).fetchall(), dtype=np.float64).reshape(-1, len(names))
        return {n: np.concatenate(parts[n] + [rows[:, j]]).astype(np.float64) for j, n in enumerate(names)}

    def front(self, run_id: int, score: str, cost: str = "latency_ms", min_stage: Stage = None) -> list[str]:
        """Encodings on the Pareto front of (higher ``score``, lower ``cost``) among the candidates that
        reached ``min_stage``, by increasing cost (:func:`~zeroshot.pareto.pareto_stream`, streamed)."""
        order = (f"{self._column(cost)} ASC", f"{self._column(score)} DESC", "arch")
        sql, params = self._select(run_id, ("arch", score), min_stage, (score, cost), order)
        cur = self.db.cursor()
        cur.row_factory = None
        if not self._has_blocks(run_id):
            return list(pareto_stream(cur.execute(sql, params)))
        sql, params = self._select(run_id, ("arch", score, cost), min_stage, (score, cost))
        rows = cur.execute(sql, params).fetchall()
        for chunk, positions, arrays in self._selected(run_id, min_stage, (score, cost), ()):
            near = positions[front_candidates(arrays[score][positions], arrays[cost][positions])]
            rows += self._block_rows(run_id, chunk, near, arrays, ("arch", score, cost))
        rows.sort(key=lambda r: (r[2], -r[1], r[0]))
        return list(pareto_stream((a, s) for a, s, _ in rows))

    def count(self, run_id: int, min_stage: Stage = None) -> int:
        """How many candidates of the run reached ``min_stage`` (every candidate: None)."""
        rows = self.db.execute("SELECT count(*) FROM candidates WHERE run_id = ? AND stage >= ?",
                               (run_id, self._stage(run_id, min_stage))).fetchone()[0]
        return rows + sum(len(p) for _, p, _ in self._selected(run_id, min_stage, (), ()))

    def counts(self, run_id: int) -> dict[str, int]:
        """Stage name -> how many candidates of the run reached it, for every stage of its kind."""
        return {name: self.count(run_id, name) for name in self.stages(run_id)}


def _connect(path: str, readonly: bool) -> sqlite3.Connection:
    """A connection to the database file ``path``; a StoreError naming ``path`` when SQLite cannot open it
    (a directory, a missing or unwritable folder).  ``readonly``: only a file that is already an SQLite
    database (anything else is refused untouched), through a ``mode=ro`` URI only where the file cannot be
    written: a read-only connection cannot remove the WAL side files (``-wal``, ``-shm``) when it closes."""
    if os.path.isdir(path):
        raise StoreError(f"{path} is a directory; give the path of a database file")
    if readonly:
        _check_sqlite_file(path)
    ro = readonly and not os.access(path, os.W_OK)
    target = f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro" if ro else path
    try:
        return sqlite3.connect(target, uri=ro, timeout=60, isolation_level=None)
    except sqlite3.OperationalError as e:
        where = "a database file" if readonly else "a database file in a folder that exists and can be written"
        raise StoreError(f"cannot open {path} ({e}); give the path of {where}") from None


def _check_sqlite_file(path: str) -> None:
    """A StoreError unless ``path`` starts with SQLite's header (an empty or foreign file is no database)."""
    try:
        with open(path, "rb") as f:
            header = f.read(len(_SQLITE_HEADER))
    except OSError as e:
        raise StoreError(f"cannot read {path}: {e.strerror}") from None
    if header != _SQLITE_HEADER:
        raise StoreError(f"{path} is not a zeroshot results database (not an SQLite file)")


def _array(name: str, dtype: str, width: int, data: bytes) -> np.ndarray:
    """A block column from its stored bytes (rows of ``width`` values; 0: one value per candidate); a
    metric as float64."""
    a = np.frombuffer(data, dtype=np.dtype(dtype))
    if not name.startswith("@"):
        return a.astype(np.float64, copy=False)
    return a.reshape(-1, width) if width else a


def _narrow(values: np.ndarray) -> np.ndarray:
    """A metric's float64 values as uint32 where that holds them exactly (counts: params, bytes), which
    :func:`_array` reads back as the same floats."""
    with np.errstate(invalid="ignore"):                  # NaN, inf, out of range: not exact, kept as they are
        narrow = values.astype(np.uint32)
    return narrow if np.array_equal(narrow, values) else values


def _complete(arrays: dict, names: Sequence[str]) -> dict:
    """``arrays`` with a NaN array for each metric of ``names`` the block lacks."""
    n = len(next(iter(arrays.values())))
    return {**{name: np.full(n, np.nan) for name in names}, **arrays}


def _names(names: str | Sequence[str]) -> tuple[str, ...]:
    return (names,) if isinstance(names, str) else tuple(names)


def _num(v):
    return None if v is None else float(v)
