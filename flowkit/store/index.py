"""The SQLite history index of a store: runs, node runs, key parts, metrics and logged params.

It is only an index: every row comes from a record file, and ``rebuild`` makes it anew from
them. WAL mode and a busy timeout let several runs write at once.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from flowkit.errors import StoreError
from flowkit.store.records import NodeRecord, Records, RunEnd, RunHeader

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, flow TEXT NOT NULL, status TEXT NOT NULL, started REAL, ended REAL,
    params TEXT, nodes_total INTEGER, backend TEXT, error TEXT);
CREATE INDEX IF NOT EXISTS runs_flow ON runs (flow, started);
CREATE TABLE IF NOT EXISTS nodes (
    run_id TEXT NOT NULL, flow TEXT NOT NULL, node TEXT NOT NULL, status TEXT NOT NULL,
    key TEXT, parts TEXT, output TEXT, started REAL, duration REAL, attempts INTEGER, error TEXT,
    PRIMARY KEY (run_id, node));
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


def _prepare(conn: sqlite3.Connection, path: Path, patience: float = 60.0) -> None:
    """WAL mode and the schema. Switching a new file to WAL can fail at once with "database is
    locked" while another process creates it (the busy timeout does not cover it): try again."""
    deadline = time.monotonic() + patience
    for attempt in itertools.count(1):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # an index rebuilt from the records by `cache reindex`: it needs no fsync, and the commits
            # it would cost are most of a cached step's time; a killed process still cannot corrupt it
            conn.execute("PRAGMA synchronous=OFF")
            conn.executescript(_SCHEMA)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise StoreError(f"cannot open the history index {path}: {exc}",
                                 hint="another process holds it; if none does, `flowkit cache reindex` rebuilds it") from None
            time.sleep(min(0.01 * attempt, 0.2))


class Index:
    """One connection to ``index.sqlite``; read-only mode never creates the file."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None
        if readonly:
            self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True) if path.exists() else None
        else:
            self.conn = sqlite3.connect(path, timeout=60, isolation_level=None)
            _prepare(self.conn, path)
        if self.conn is not None:
            self.conn.row_factory = sqlite3.Row

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        assert self.conn is not None
        with self.conn:  # one transaction
            self.conn.executemany(sql, rows)

    # -- writes ------------------------------------------------------------------------------

    def add_run(self, run_id: str, header: RunHeader) -> None:
        self._write(
            "INSERT OR IGNORE INTO runs VALUES (?, ?, 'running', ?, NULL, ?, ?, ?, NULL)",
            [(run_id, header.flow, header.started, json.dumps(header.params, sort_keys=True),
              len(header.nodes), header.backend)],
        )

    def add_nodes(self, run_id: str, records: list[NodeRecord]) -> None:
        """Index node records in one transaction."""
        assert self.conn is not None
        with self.conn:
            self.conn.executemany("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                  [_node_row(run_id, r) for r in records])
            for record in records:
                node = record.node
                if record.metrics:
                    self.conn.execute("DELETE FROM metrics WHERE run_id = ? AND node = ?", (run_id, node))
                    self.conn.executemany(
                        "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?)",
                        [(run_id, node, m.name, m.value, m.step, i) for i, m in enumerate(record.metrics)],
                    )
                if record.logged_params:
                    self.conn.executemany(
                        "INSERT OR REPLACE INTO logged_params VALUES (?, ?, ?, ?)",
                        [(run_id, node, k, json.dumps(v, default=repr)) for k, v in record.logged_params.items()],
                    )

    def end_run(self, run_id: str, end: RunEnd) -> None:
        self._write("UPDATE runs SET status = ?, ended = ?, error = ? WHERE run_id = ?",
                    [(end.status, end.ended, end.error, run_id)])

    def rebuild(self, store: Records) -> int:
        """Drop every row and re-read every record of the store; returns the number of runs."""
        assert self.conn is not None
        with self.conn:
            for table in ("runs", "nodes", "metrics", "logged_params"):
                self.conn.execute(f"DELETE FROM {table}")
        count = 0
        for run_id in store.run_ids():
            header = store.read_header(run_id)
            if header is None:
                continue
            self.add_run(run_id, header)
            self.add_nodes(run_id, store.node_records(run_id))
            end = store.read_end(run_id)
            if end is not None:
                self.end_run(run_id, end)
            count += 1
        self._recover_from_keys(store)
        return count

    def _recover_from_keys(self, store: Records) -> None:
        """Steps that ran in a run killed before its journal was written: their key records say so."""
        known = {(r["run_id"], r["node"]) for r in self._rows("SELECT run_id, node FROM nodes")}
        runs = {r["run_id"] for r in self._rows("SELECT run_id FROM runs")}
        for record in store.key_records():
            if record.run_id in runs and (record.run_id, record.node) not in known:
                self.add_nodes(record.run_id, [record])

    # -- queries -----------------------------------------------------------------------------

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        if self.conn is None:
            return []
        return [dict(row) for row in self.conn.execute(sql, args)]

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

    def referenced_objects(self) -> set[str]:
        """Object ids that some recorded node run produced."""
        return {json.loads(r["output"])["object"] for r in self._rows("SELECT output FROM nodes WHERE output IS NOT NULL")}


def _node_row(run_id: str, record: NodeRecord) -> tuple[Any, ...]:
    return (run_id, record.flow, record.node, record.status, record.key,
            json.dumps(record.parts.to_json(), sort_keys=True) if record.parts is not None else None,
            json.dumps(record.output.to_json(), sort_keys=True) if record.output is not None else None,
            record.started, record.duration, record.attempts, record.error)


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for field in ("parts", "output"):
        if row.get(field):
            row[field] = json.loads(row[field])
    return row
