"""The formats of the store's records, owned here: node and key records, run headers and ends.

Records are small immutable JSON files (sorted keys); in memory they are typed. ``Records``
reads and writes them through the store's ``FileSystem``, at the paths ``layout`` names.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from typing import Any

import attrs
import orjson

from flowkit.authoring.metrics import Metric
from flowkit.keys.parts import KeyParts
from flowkit.store import layout
from flowkit.store.fs import FileSystem
from flowkit.store.objects import StoredOutput

_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def dumps_json(data: Any) -> bytes:
    """JSON bytes for records, sorted keys. orjson: encoding and reading records is a fifth of a
    cached step's time with the standard library; it falls back to it for what orjson refuses
    (integers over 64 bits)."""
    try:
        return orjson.dumps(data, option=_ORJSON_OPTIONS, default=repr)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(data, sort_keys=True, separators=(",", ":"), default=repr).encode()


def loads_json(data: bytes | None) -> dict[str, Any] | None:
    """A JSON object, or None for missing, torn or non-object bytes (a torn file counts as missing)."""
    if data is None:
        return None
    try:
        value = orjson.loads(data)
    except ValueError:  # orjson.JSONDecodeError is a ValueError
        return None
    return value if isinstance(value, dict) else None


@attrs.define
class NodeRecord:
    """What happened to one node in one run; also the key record of a step that ran (then with
    its ``parts`` and ``created``)."""

    flow: str
    run_id: str
    node: str
    status: str  # ran | cached | failed | skipped
    key: str | None = None
    parts: KeyParts | None = None
    output: StoredOutput | None = None
    started: float = 0.0
    duration: float = 0.0
    attempts: int = 0
    error: str | None = None
    traceback: str | None = None
    metrics: list[Metric] = attrs.field(factory=list)
    logged_params: dict[str, Any] = attrs.field(factory=dict)
    created: float | None = None  # key records only: when the cache entry was made

    def to_json(self) -> dict[str, Any]:
        data = {
            "flow": self.flow, "run_id": self.run_id, "node": self.node, "status": self.status, "key": self.key,
            "parts": self.parts.to_json() if self.parts is not None else None,
            "output": self.output.to_json() if self.output is not None else None,
            "started": self.started, "duration": self.duration, "attempts": self.attempts,
            "error": self.error, "traceback": self.traceback, "metrics": [m.to_json() for m in self.metrics],
            "logged_params": self.logged_params,
        }
        if self.created is not None:
            data["created"] = self.created
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "NodeRecord":
        parts, output = data.get("parts"), data.get("output")
        return cls(
            flow=data["flow"], run_id=data.get("run_id") or "", node=data["node"], status=data["status"],
            key=data.get("key"), parts=KeyParts.from_json(parts) if parts else None,
            output=StoredOutput.from_json(output) if output else None,
            started=data.get("started") or 0.0, duration=data.get("duration") or 0.0,
            attempts=data.get("attempts") or 0, error=data.get("error"), traceback=data.get("traceback"),
            metrics=[Metric.from_json(m) for m in data.get("metrics") or ()],
            logged_params=data.get("logged_params") or {}, created=data.get("created"),
        )


@attrs.frozen
class CacheHit:
    """What a cache hit takes from a key record: the output, and what its run logged."""

    output: StoredOutput
    metrics: list[Metric]
    logged_params: dict[str, Any]


@attrs.frozen
class RunHeader:
    """``run.json``: who ran what, with which parameters, on which backend."""

    flow: str
    params: dict[str, Any]
    nodes: list[str]
    backend: str | None
    started: float

    def to_json(self) -> dict[str, Any]:
        return {"flow": self.flow, "params": self.params, "nodes": list(self.nodes), "backend": self.backend,
                "started": self.started}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunHeader":
        return cls(data["flow"], data.get("params") or {}, list(data.get("nodes") or ()), data.get("backend"),
                   data["started"])


@attrs.frozen
class RunEnd:
    """``end.json``: how the run ended."""

    status: str  # succeeded | failed | cancelled
    ended: float
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status, "ended": self.ended}
        if self.error is not None:
            data["error"] = self.error
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunEnd":
        return cls(data["status"], data["ended"], data.get("error"))


class Records:
    """Reads and writes every kind of record; knows nothing of the index."""

    def __init__(self, fs: FileSystem) -> None:
        self.fs = fs

    def _read(self, path: str) -> dict[str, Any] | None:
        try:
            return loads_json(self.fs.read(path))
        except OSError:
            return None

    def _write(self, path: str, data: dict[str, Any]) -> None:
        self.fs.write(path, dumps_json(data))

    # -- cache keys --------------------------------------------------------------------------

    def read_key(self, key: str) -> NodeRecord | None:
        data = self._read(layout.key_path(key))
        return NodeRecord.from_json(data) if data and data.get("key") == key else None

    def read_hit(self, key: str) -> CacheHit | None:
        """The output of a key record, without the rest: a cached step's one read, on the hot path."""
        data = self._read(layout.key_path(key))
        if not data or data.get("key") != key or not data.get("output"):
            return None
        metrics = data.get("metrics")
        return CacheHit(StoredOutput.from_json(data["output"]), [Metric.from_json(m) for m in metrics] if metrics else [],
                        data.get("logged_params") or {})

    def write_key(self, record: NodeRecord) -> None:
        assert record.key is not None
        self._write(layout.key_path(record.key), record.to_json())

    def key_files(self) -> list[tuple[str, NodeRecord | None]]:
        """Every file under ``keys/`` with its record, None where it is not a readable key record."""
        found: list[tuple[str, NodeRecord | None]] = []
        for path in self.fs.files(layout.KEYS):
            data = self._read(path) if layout.is_key_path(path) else None
            found.append((path, NodeRecord.from_json(data) if data is not None and "key" in data else None))
        return found

    def key_records(self) -> list[NodeRecord]:
        """Every readable key record (for gc, ls and reindex)."""
        return [record for _, record in self.key_files() if record is not None]

    # -- runs --------------------------------------------------------------------------------

    def write_header(self, run_id: str, header: RunHeader) -> None:
        self._write(layout.run_header_path(run_id), header.to_json())

    def read_header(self, run_id: str) -> RunHeader | None:
        data = self._read(layout.run_header_path(run_id))
        return RunHeader.from_json(data) if data is not None else None

    def has_header(self, run_id: str) -> bool:
        return self.fs.size(layout.run_header_path(run_id)) is not None

    def write_node(self, record: NodeRecord) -> None:
        """One node's record in a file of its own (run-step: one process per node)."""
        self._write(layout.node_path(record.run_id, record.node), record.to_json())

    def write_batch(self, run_id: str, records: list[NodeRecord]) -> None:
        """Many node records in one file (in-process runners)."""
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(2)}"
        self._write(layout.batch_path(run_id, name), {"records": [r.to_json() for r in records]})

    def write_end(self, run_id: str, end: RunEnd) -> None:
        self._write(layout.run_end_path(run_id), end.to_json())

    def read_end(self, run_id: str) -> RunEnd | None:
        data = self._read(layout.run_end_path(run_id))
        return RunEnd.from_json(data) if data is not None else None

    def read_node(self, run_id: str, node: str) -> NodeRecord | None:
        data = self._read(layout.node_path(run_id, node))
        if data is not None:
            return NodeRecord.from_json(data)
        return next((r for r in self._batch_records(run_id) if r.node == node), None)

    def run_ids(self) -> list[str]:
        return [run_id for run_id in self.fs.folders(layout.RUNS) if self.has_header(run_id)]

    def node_records(self, run_id: str) -> list[NodeRecord]:
        """Every node record of a run; where a node was recorded twice, the later start wins."""
        latest: dict[str, NodeRecord] = {}
        singles = [self._read(path) for path in self.fs.files(layout.nodes_folder(run_id)) if path.endswith(".json")]
        for record in [*self._batch_records(run_id), *(NodeRecord.from_json(d) for d in singles if d)]:
            known = latest.get(record.node)
            if known is None or record.started >= known.started:
                latest[record.node] = record
        return list(latest.values())

    def _batch_records(self, run_id: str) -> list[NodeRecord]:
        records: list[NodeRecord] = []
        for path in self.fs.files(layout.batches_folder(run_id)):
            if path.endswith(".json"):
                records += [NodeRecord.from_json(d) for d in (self._read(path) or {}).get("records", [])]
        return records
