"""The SQLite history index of a store: runs, node runs, key parts, metrics and logged params.

It is only a cache of the records: every row comes from a record file, and ``rebuild`` makes it
anew from them, aside, then swapped in by one transaction, so a killed rebuild leaves the old
index. A damaged file ("file is not a database") is rebuilt from the records when it is found;
a store this process cannot write is indexed in memory when its file cannot be read as it is;
a write the index cannot take (a full disk) is warned about once and the run goes on: its
records have it. WAL mode and a busy timeout let several runs write at once.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable

from flowkit.errors import StoreError
from flowkit.store import layout
from flowkit.store.records import NodeRecord, Records, RunEnd, RunHeader

log = logging.getLogger("flowkit.store")
TABLES = ("runs", "nodes", "metrics", "logged_params")
_REINDEX_HINT = "`flowkit cache reindex` rebuilds it from the records"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, flow TEXT NOT NULL, status TEXT NOT NULL, started REAL, ended REAL,
    params TEXT, nodes_total INTEGER, backend TEXT, error TEXT);
CREATE INDEX IF NOT EXISTS runs_flow ON runs (flow, started);
CREATE TABLE IF NOT EXISTS nodes (
    run_id TEXT NOT NULL, flow TEXT NOT NULL, node TEXT NOT NULL, status TEXT NOT NULL,
    key TEXT, parts TEXT, output TEXT, started REAL, duration REAL, attempts INTEGER, error TEXT,
    inputs TEXT, PRIMARY KEY (run_id, node));
CREATE INDEX IF NOT EXISTS nodes_by_name ON nodes (flow, node, started);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, node TEXT NOT NULL, name TEXT NOT NULL, value REAL, step INTEGER, seq INTEGER);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics (run_id);
CREATE TABLE IF NOT EXISTS logged_params (
    run_id TEXT NOT NULL, node TEXT NOT NULL, name TEXT NOT NULL, value TEXT,
    PRIMARY KEY (run_id, node, name));
"""

_STATUS = """CASE WHEN r.status != 'running' THEN r.status
    WHEN EXISTS (SELECT 1 FROM nodes n WHERE n.run_id = r.run_id AND n.status = 'failed') THEN 'failed'
    WHEN (SELECT COUNT(*) FROM nodes n WHERE n.run_id = r.run_id) >= r.nodes_total THEN 'succeeded'
    ELSE 'running' END"""



def damaged(exc: BaseException) -> bool:
    """An SQLite error that says the file is not (or no longer) a sound database."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    return name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or "not a database" in text or "malformed" in text


def _prepare(conn: sqlite3.Connection, path: Path, patience: float = 60.0) -> None:
    """WAL mode and the schema. Switching a new file to WAL can fail at once with "database is
    locked" while another process creates it (the busy timeout does not cover it): try again.
    A damaged file raises its sqlite3 error as it is, for the caller to rebuild it."""
    deadline = time.monotonic() + patience
    for attempt in itertools.count(1):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # an index rebuilt from the records by `cache reindex`: it needs no fsync, and the commits
            # it would cost are most of a cached step's time; a killed process still cannot corrupt it
            conn.execute("PRAGMA synchronous=OFF")
            conn.executescript(_SCHEMA)
            _add_columns(conn)
            return
        except sqlite3.OperationalError as exc:
            if damaged(exc):
                raise
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise StoreError(f"cannot open the history index {path}: {exc}",
                                 hint="another process holds it; if none does, `flowkit cache reindex` rebuilds it") from None
            time.sleep(min(0.01 * attempt, 0.2))


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


class Index:
    """One connection to ``index.sqlite``; read-only mode never creates the file.

    ``records`` are what it is rebuilt from when the file is damaged or unreadable."""

    def __init__(self, path: Path, *, readonly: bool = False, records: Records | None = None) -> None:
        self.path = path
        self.readonly = readonly
        self.records = records
        self.conn: sqlite3.Connection | None = None
        self._inode: int | None = None
        self._lenient = True  # a write that fails warns (the records have it); False while rebuilding
        self._warned = False
        if readonly:
            self._open_readonly()
        else:
            self._open_writable()

    @classmethod
    def _over(cls, conn: sqlite3.Connection) -> "Index":
        """An Index over a connection made elsewhere (an index being built aside, or in memory)."""
        index = cls.__new__(cls)
        index.path, index.readonly, index.records, index.conn = Path(":memory:"), False, None, conn
        index._inode, index._lenient, index._warned = None, False, False
        conn.row_factory = sqlite3.Row
        return index

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # -- opening, and what to do when the file cannot serve -----------------------------------

    def _open_writable(self) -> None:
        try:
            self._connect()
        except sqlite3.DatabaseError as exc:
            if not damaged(exc):
                raise StoreError(f"cannot open the history index {self.path}: {exc}", hint=_REINDEX_HINT) from None
            self._replace_damaged(exc)

    def _connect(self) -> None:
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            _prepare(conn, self.path)
        except BaseException:
            conn.close()
            raise
        conn.row_factory = sqlite3.Row
        self.conn, self._inode = conn, _inode(self.path)

    def _open_readonly(self) -> None:
        """The file as it is (``mode=ro``); ``immutable`` where SQLite cannot make its WAL index
        (a folder this process cannot write) and no WAL holds rows; else an index in memory."""
        if not self.path.exists():
            has_runs = self.records is not None and bool(self.records.run_ids())
            self.conn = self._in_memory() if has_runs else None
            return
        wal = self.path.with_name(self.path.name + "-wal")
        options = ["mode=ro"] + ([] if wal.exists() and wal.stat().st_size else ["immutable=1"])
        for option in options:
            conn = None
            try:
                conn = sqlite3.connect(f"{self.path.as_uri()}?{option}", uri=True)
                tables = conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                                      f"({', '.join('?' * len(TABLES))})", TABLES).fetchone()[0]
                if tables == len(TABLES):
                    conn.execute("SELECT run_id FROM runs LIMIT 1").fetchall()
                    conn.row_factory = sqlite3.Row
                    self.conn = conn
                    return
                conn.close()
            except sqlite3.Error:
                if conn is not None:
                    conn.close()
        self.conn = self._in_memory()

    def _in_memory(self) -> sqlite3.Connection | None:
        """The index of the records, built in memory: exact, for this process only."""
        if self.records is None:
            return None
        conn = sqlite3.connect(":memory:", isolation_level=None)
        conn.executescript(_SCHEMA)
        Index._over(conn)._fill(self.records)
        return conn

    def _replace_damaged(self, exc: BaseException) -> None:
        if self.records is None:
            raise StoreError(f"the history index {self.path} is damaged: {exc}", hint=_REINDEX_HINT)
        log.warning("warning: the history index %s is damaged (%s): rebuilding it from the records", self.path, exc)
        self.close()
        aside, _ = self._build_aside(self.records)
        self._install(aside)
        self._connect()

    def _repair(self, exc: BaseException) -> bool:
        """Make a working index after ``exc``; False when there is nothing to make it from."""
        if self.records is None:
            return False
        if self.readonly:
            self.close()
            self.conn = self._in_memory()
            return True
        self._replace_damaged(exc)
        return True

    def _connection(self) -> sqlite3.Connection | None:
        """The connection, re-opened when another process replaced a damaged file meanwhile."""
        if self._inode is not None and _inode(self.path) != self._inode:
            self.close()
            self._open_writable()
        return self.conn

    def _warn_behind(self, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            log.warning("warning: the history index %s was not updated (%s): the records have everything; "
                        "%s", self.path, exc, _REINDEX_HINT)

    def _transaction(self, work: Callable[[sqlite3.Connection], None]) -> None:
        """``work`` in one transaction; a failure is a warning (the records are the truth) but while
        building an index, and a damaged file is rebuilt once."""
        for attempt in (1, 2):
            conn = self._connection()
            if conn is None:
                return
            try:
                _atomically(conn, work)
                return
            except sqlite3.Error as exc:
                if not self._lenient:
                    raise
                if attempt == 1 and damaged(exc) and self._repair(exc):
                    continue
                self._warn_behind(exc)
                return

    def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self._transaction(lambda conn: conn.executemany(sql, rows))

    # -- writes ------------------------------------------------------------------------------

    def add_run(self, run_id: str, header: RunHeader) -> None:
        self._write(
            "INSERT OR IGNORE INTO runs VALUES (?, ?, 'running', ?, NULL, ?, ?, ?, NULL)",
            [(run_id, header.flow, header.started, json.dumps(header.params, sort_keys=True),
              len(header.nodes), header.backend)],
        )

    def add_nodes(self, run_id: str, records: list[NodeRecord]) -> None:
        """Index node records in one transaction."""

        def work(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             [_node_row(run_id, r) for r in records])
            for record in records:
                node = record.node
                if record.metrics:
                    conn.execute("DELETE FROM metrics WHERE run_id = ? AND node = ?", (run_id, node))
                    conn.executemany(
                        "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?)",
                        [(run_id, node, m.name, m.value, m.step, i) for i, m in enumerate(record.metrics)],
                    )
                if record.logged_params:
                    conn.executemany(
                        "INSERT OR REPLACE INTO logged_params VALUES (?, ?, ?, ?)",
                        [(run_id, node, k, json.dumps(v, default=repr)) for k, v in record.logged_params.items()],
                    )

        self._transaction(work)

    def end_run(self, run_id: str, end: RunEnd) -> None:
        self._write("UPDATE runs SET status = ?, ended = ?, error = ? WHERE run_id = ?",
                    [(end.status, end.ended, end.error, run_id)])

    def forget(self, run_ids: list[str]) -> None:
        """Drop the rows of runs whose records are gone (``gc --keep``)."""

        def work(conn: sqlite3.Connection) -> None:
            for table in TABLES:
                conn.executemany(f"DELETE FROM {table} WHERE run_id = ?", [(run_id,) for run_id in run_ids])

        if run_ids:
            self._transaction(work)

    # -- rebuilding from the records ------------------------------------------------------------

    def rebuild(self, store: Records, *, replace: bool = False) -> int:
        """Make the index anew from the records; returns the number of runs. It is built aside and
        swapped in by one transaction (a killed rebuild leaves the old index), then the runs that
        moved on meanwhile are read again. ``replace``: put the new file in place of the old one
        instead (a file SQLite's own check finds damaged)."""
        self.records = self.records or store
        if self.readonly:
            self.close()
            self.conn = self._in_memory()
            return len(store.run_ids())
        aside, filled = self._build_aside(store)
        try:
            if replace or not self._swapped_in(aside):
                self.close()
                self._install(aside)
                self._connect()
            self._catch_up(store, filled)
        finally:
            aside.unlink(missing_ok=True)
        return len(filled)

    def _swapped_in(self, aside: Path) -> bool:
        """Swap the rows of ``aside`` in; False when this file is too damaged to take them."""
        conn = self._connection()
        if conn is None:
            return False
        try:
            self._swap_in(conn, aside)
        except sqlite3.DatabaseError as exc:
            if damaged(exc):
                return False
            raise StoreError(f"cannot rebuild the history index {self.path}: {exc}",
                             hint="another process holds it for long; try again") from None
        return True

    def _build_aside(self, records: Records) -> tuple[Path, dict[str, bool]]:
        """A new index file beside this one, filled from the records; what ``_fill`` returns."""
        aside = self.path.with_name(layout.index_aside(f"{os.getpid()}-{secrets.token_hex(4)}"))
        conn = sqlite3.connect(aside, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=OFF")  # a file no one else reads until it is complete
            conn.execute("PRAGMA synchronous=OFF")
            conn.executescript(_SCHEMA)
            filled = Index._over(conn)._fill(records)
        except BaseException:
            conn.close()
            aside.unlink(missing_ok=True)
            raise
        conn.close()
        return aside, filled

    def _install(self, aside: Path) -> None:
        """Put a complete index file in place of a damaged one (its WAL files belong to the old one)."""
        for extra in ("-wal", "-shm"):
            self.path.with_name(self.path.name + extra).unlink(missing_ok=True)
        os.replace(aside, self.path)

    @staticmethod
    def _swap_in(conn: sqlite3.Connection, aside: Path) -> None:
        """Every row of the index replaced by those of ``aside``, in one transaction."""
        conn.execute("ATTACH DATABASE ? AS fresh", (str(aside),))
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for table in TABLES:
                    columns = ", ".join(row[1] for row in conn.execute(f"PRAGMA fresh.table_info({table})"))
                    conn.execute(f"DELETE FROM main.{table}")
                    conn.execute(f"INSERT INTO main.{table} ({columns}) SELECT {columns} FROM fresh.{table}")
                conn.execute("COMMIT")
            except BaseException:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise
        finally:
            try:
                conn.execute("DETACH DATABASE fresh")
            except sqlite3.Error:
                pass  # the connection is closed next: the attachment goes with it

    def _fill(self, records: Records) -> dict[str, bool]:
        """Index every run of the records (a bad record is skipped, warned); run id -> ended."""
        filled: dict[str, bool] = {}
        for run_id in records.run_ids():
            ended = self._index_run(records, run_id)
            if ended is not None:
                filled[run_id] = ended
        self._recover_from_keys(records.key_records(), set(filled))
        return filled

    def _index_run(self, records: Records, run_id: str) -> bool | None:
        """Index one run from its records; whether it has ended (None: no readable header)."""
        header = records.read_header(run_id)
        if header is None:
            return None
        self.add_run(run_id, header)
        self.add_nodes(run_id, records.node_records(run_id))
        end = records.read_end(run_id)
        if end is not None:
            self.end_run(run_id, end)
        return end is not None

    def _catch_up(self, records: Records, filled: dict[str, bool]) -> None:
        """Runs that started, went on or were removed while the index was being built."""
        present = set(records.run_ids())
        self.forget(sorted(set(filled) - present))
        for run_id in sorted(present):
            if not filled.get(run_id):
                self._index_run(records, run_id)

    def _recover_from_keys(self, key_records: list[NodeRecord], runs: set[str]) -> None:
        """Steps that ran in a run killed before its journal was written: their key records say so."""
        known = {(r["run_id"], r["node"]) for r in self._rows("SELECT run_id, node FROM nodes")}
        for record in key_records:
            if record.run_id in runs and (record.run_id, record.node) not in known:
                self.add_nodes(record.run_id, [record])

    # -- queries -----------------------------------------------------------------------------

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        for attempt in (1, 2):
            conn = self._connection()
            if conn is None:
                return []
            try:
                return [dict(row) for row in conn.execute(sql, args)]
            except sqlite3.Error as exc:
                if attempt == 1 and (damaged(exc) or self.readonly) and self._repair(exc):
                    continue
                raise StoreError(f"cannot read the history index {self.path}: {exc}", hint=_REINDEX_HINT) from None
        return []

    def runs(self, flow: str | None = None, limit: int = 20, run_id: str | None = None) -> list[dict[str, Any]]:
        """Recent runs (or the one ``run_id``), newest first, with counts of ran / cached / failed nodes."""
        where, args = ("WHERE r.run_id = ?", (run_id,)) if run_id else ("WHERE r.flow = ?", (flow,)) if flow else ("", ())
        sql = f"""SELECT r.run_id, r.flow, {_STATUS} AS status, r.started, r.ended, r.params, r.nodes_total,
                    r.backend, r.error,
                    (SELECT COUNT(*) FROM nodes n WHERE n.run_id = r.run_id AND n.status = 'ran') AS ran,
                    (SELECT COUNT(*) FROM nodes n WHERE n.run_id = r.run_id AND n.status = 'cached') AS cached,
                    (SELECT COUNT(*) FROM nodes n WHERE n.run_id = r.run_id AND n.status = 'failed') AS failed,
                    (SELECT MAX(n.started + n.duration) FROM nodes n WHERE n.run_id = r.run_id) AS last_end
                  FROM runs r {where} ORDER BY r.started DESC, r.run_id DESC LIMIT ?"""
        rows = self._rows(sql, (*args, limit))
        for row in rows:
            row["params"] = json.loads(row["params"] or "{}")
        return rows

    def run(self, run_id: str) -> dict[str, Any] | None:
        rows = self.runs(run_id=run_id, limit=1)
        return rows[0] if rows else None

    def run_ids_like(self, prefix: str) -> list[str]:
        return [r["run_id"] for r in self._rows("SELECT run_id FROM runs WHERE run_id LIKE ? ORDER BY run_id",
                                                 (prefix.replace("%", "") + "%",))]

    def made(self, digest: str) -> list[dict[str, Any]]:
        """Node rows whose output has this digest, or a digest starting with it (a short form
        as ``show`` prints it), oldest first: the runs that made or re-used an output."""
        pattern = '%"digest": "' + digest.replace("%", "").replace("_", "") + '%'
        return [_decode(row) for row in self._rows("SELECT * FROM nodes WHERE output LIKE ? ORDER BY started", (pattern,))]

    def consumers(self, digest: str) -> list[dict[str, Any]]:
        """Node rows that took an output with this digest as an input, oldest first."""
        pattern = '%: "' + digest.replace("%", "").replace("_", "") + '"%'
        return [_decode(row) for row in self._rows("SELECT * FROM nodes WHERE inputs LIKE ? ORDER BY started", (pattern,))]

    def outputs(self, flow: str | None = None) -> list[dict[str, Any]]:
        """``run_id``, ``flow``, ``node``, ``started`` and the output's ``object`` of every node row
        with an output, oldest first: what ``flowkit datasets`` reads, in one query (the inline
        bytes of small outputs stay in the database)."""
        where, args = ("AND flow = ?", (flow,)) if flow else ("", ())
        return self._rows(f"""SELECT run_id, flow, node, started, json_extract(output, '$.object') AS object
                              FROM nodes WHERE output IS NOT NULL {where} ORDER BY started, run_id""", args)

    def nodes(self, run_id: str) -> list[dict[str, Any]]:
        return [_decode(row) for row in self._rows("SELECT * FROM nodes WHERE run_id = ? ORDER BY started", (run_id,))]

    def previous(self, flow: str, node: str, *, before: float | None = None,
                 exclude_run: str | None = None) -> NodeRecord | None:
        """The latest earlier record of this node with a key, for plan and explain (see Store.parts_of)."""
        rows = self._rows(
            """SELECT * FROM nodes WHERE flow = ? AND node = ? AND (parts IS NOT NULL OR key IS NOT NULL) AND run_id != ?
               AND (? IS NULL OR started < ?) ORDER BY started DESC LIMIT 1""",
            (flow, node, exclude_run or "", before, before),
        )
        return NodeRecord.from_json(_decode(rows[0])) if rows else None

    def metrics(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT node, name, value, step FROM metrics WHERE run_id = ? ORDER BY node, seq", (run_id,))

    def logged_params(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._rows("SELECT node, name, value FROM logged_params WHERE run_id = ? ORDER BY node, name", (run_id,))
        for row in rows:
            row["value"] = json.loads(row["value"])
        return rows


def _add_columns(conn: sqlite3.Connection) -> None:
    """Columns newer than an index file: added empty (``cache reindex`` fills them for older runs)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(nodes)")}
    if "inputs" not in columns:
        conn.execute("ALTER TABLE nodes ADD COLUMN inputs TEXT")


def _atomically(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], None]) -> None:
    """``work`` as one SQLite transaction. The connection is in autocommit mode, where
    ``with conn`` opens none: every row of an ``executemany`` was its own commit (27 us a row).
    IMMEDIATE takes the write lock first, so two writers wait (busy timeout) instead of deadlocking."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        work(conn)
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def _node_row(run_id: str, record: NodeRecord) -> tuple[Any, ...]:
    return (run_id, record.flow, record.node, record.status, record.key,
            json.dumps(record.parts.to_json(), sort_keys=True) if record.parts is not None else None,
            json.dumps(record.output.to_json(), sort_keys=True) if record.output is not None else None,
            record.started, record.duration, record.attempts, record.error,
            json.dumps(record.inputs, sort_keys=True) if record.inputs else None)


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for field in ("parts", "output", "inputs"):
        if row.get(field):
            row[field] = json.loads(row[field])
    return row
