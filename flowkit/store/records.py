"""The formats of the store's records, owned here: node and key records, run headers and ends.

Records are small immutable JSON files (sorted keys); in memory they are typed. ``Records``
reads and writes them through the store's ``FileSystem``, at the paths ``layout`` names.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import time
from typing import Any, Callable, TypeVar

import attrs
import orjson

from flowkit.authoring.metrics import Metric
from flowkit.keys.parts import KeyParts
from flowkit.store import layout
from flowkit.store.fs import FileSystem, is_temporary
from flowkit.store.objects import StoredOutput

T = TypeVar("T")

_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
_INT64 = (-(2**63), 2**63 - 1)
log = logging.getLogger("flowkit.store")


class RecordError(ValueError):
    """A file that parses as JSON but is not the record it should be (a field missing or of the
    wrong type). Caught inside the store: the record is skipped with a warning naming its file."""


def _orjson_loses(value: Any) -> bool:
    """True when orjson would not write ``value`` exactly: NaN and infinities (it writes null),
    integers beyond 64 bits (it refuses them)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, int):
        return not _INT64[0] <= value <= _INT64[1]
    if isinstance(value, dict):
        return any(_orjson_loses(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_orjson_loses(v) for v in value)
    return False


def _stdlib_dumps(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=repr).encode()


def dumps_json(data: Any, *, exact: Any = None) -> bytes:
    """JSON bytes for records, sorted keys. orjson: encoding and reading records is a fifth of a
    cached step's time with the standard library; it falls back to it for what orjson refuses
    (integers over 64 bits) and, for ``exact`` (the values that must come back as they were:
    flow parameters, logged params), for NaN and infinities, which orjson would write as null."""
    if exact is not None and _orjson_loses(exact):
        return _stdlib_dumps(data)
    try:
        return orjson.dumps(data, option=_ORJSON_OPTIONS, default=repr)
    except (TypeError, orjson.JSONEncodeError):
        return _stdlib_dumps(data)


def loads_json(data: bytes | None, *, exact: bool = False) -> dict[str, Any] | None:
    """A JSON object, or None for missing, torn or non-object bytes (a torn file counts as missing).

    orjson reads integers over 64 bits as floats and refuses NaN: ``exact`` reads with the
    standard library, which keeps both (run headers: a parameter comes back as it was given);
    either way bytes orjson refuses get a second reading by the standard library."""
    if data is None:
        return None
    try:
        value = json.loads(data) if exact else orjson.loads(data)
    except ValueError:  # orjson.JSONDecodeError is a ValueError
        try:
            value = json.loads(data)
        except (ValueError, RecursionError):
            return None
    except RecursionError:
        return None
    return value if isinstance(value, dict) else None


def _lossy(value: Any) -> bool:
    """A float orjson may have made of an integer over 64 bits."""
    if isinstance(value, float):
        return abs(value) >= 2.0**63
    if isinstance(value, dict):
        return any(_lossy(v) for v in value.values())
    if isinstance(value, list):
        return any(_lossy(v) for v in value)
    return False


def _lossy_logged(data: dict[str, Any]) -> bool:
    """Logged params (of a node record, or of the records of a batch) that orjson may have rounded."""
    records = data.get("records")
    if isinstance(records, list):
        return any(isinstance(r, dict) and _lossy_logged(r) for r in records)
    logged = data.get("logged_params")
    return bool(logged) and _lossy(logged)


# -- field checks: a record from another version, a hand edit or a bit flip must not crash a reader --


def _get(data: dict[str, Any], name: str, kinds: type | tuple[type, ...], default: Any = ...) -> Any:
    """``data[name]`` checked against ``kinds``; missing or None gives ``default`` (an error without one)."""
    value = data.get(name)
    if value is None:
        if default is ...:
            raise RecordError(f"{name!r} is missing")
        return default
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _as_tuple(kinds)):
        raise RecordError(f"{name!r} is {type(value).__name__}, not {_names(kinds)}")
    return value


def _need_dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RecordError(f"{where!r} holds {type(value).__name__}, not objects")
    return value


def _as_tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _names(kinds: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kinds))


_NUMBER = (int, float)
PARSE_ERRORS = (RecordError, KeyError, TypeError, ValueError, AttributeError)  # what a from_json may raise


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
    inputs: dict[str, str] = attrs.field(factory=dict)  # upstream node -> the output digest it gave (lineage)

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
        if self.inputs:
            data["inputs"] = self.inputs
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "NodeRecord":
        """The typed record; RecordError (or another of PARSE_ERRORS) when a field is of the wrong type."""
        if not isinstance(data, dict):
            raise RecordError(f"a node record is an object, not {type(data).__name__}")
        parts, output = _get(data, "parts", dict, None), _get(data, "output", dict, None)
        metrics = _get(data, "metrics", list, [])
        return cls(
            flow=_get(data, "flow", str), run_id=_get(data, "run_id", str, ""), node=_get(data, "node", str),
            status=_get(data, "status", str), key=_get(data, "key", str, None),
            parts=KeyParts.from_json(parts) if parts else None,
            output=StoredOutput.from_json(output) if output else None,
            started=_get(data, "started", _NUMBER, 0.0) or 0.0, duration=_get(data, "duration", _NUMBER, 0.0) or 0.0,
            attempts=_get(data, "attempts", int, 0) or 0, error=_get(data, "error", str, None),
            traceback=_get(data, "traceback", str, None),
            metrics=[Metric.from_json(_need_dict(m, "metrics")) for m in metrics],
            logged_params=_get(data, "logged_params", dict, {}) or {}, created=_get(data, "created", _NUMBER, None),
            inputs=_digests(_get(data, "inputs", dict, {}) or {}),
        )


def _digests(data: dict[str, Any]) -> dict[str, str]:
    if not all(isinstance(value, str) for value in data.values()):
        raise RecordError("inputs map node names to output digests (text)")
    return data


@attrs.frozen
class CacheHit:
    """What a cache hit takes from a key record: the output, and what its run logged."""

    output: StoredOutput
    metrics: list[Metric]
    logged_params: dict[str, Any]


@attrs.frozen
class RunHeader:
    """``run.json``: who ran what, with which parameters, on which backend, in which process.

    ``pid``, ``host`` and ``pid_start`` name the process that runs it (``flowkit run`` or
    ``Flow.run``), so a run without an end whose process is gone shows as interrupted; a run
    recorded by ``run-step`` has no single process and leaves them out (as do older records)."""

    flow: str
    params: dict[str, Any]
    nodes: list[str]
    backend: str | None
    started: float
    pid: int | None = None
    host: str | None = None
    pid_start: str | None = None  # the process's start, so a pid used again later is not taken for it
    data: dict[str, "DataInput"] = attrs.field(factory=dict)  # the parameters that are fk.File / fk.Dir

    def to_json(self) -> dict[str, Any]:
        out = {"flow": self.flow, "params": self.params, "nodes": list(self.nodes), "backend": self.backend,
               "started": self.started}
        for name in ("pid", "host", "pid_start"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.data:  # left out when empty: older records read and write the same bytes
            out["data"] = {name: item.to_json() for name, item in self.data.items()}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunHeader":
        nodes = _get(data, "nodes", list, [])
        if not all(isinstance(n, str) for n in nodes):
            raise RecordError("'nodes' holds a value that is not a name")
        inputs = _get(data, "data", dict, {}) or {}
        return cls(_get(data, "flow", str), _get(data, "params", dict, {}) or {}, list(nodes),
                   _get(data, "backend", str, None), _get(data, "started", _NUMBER),
                   _get(data, "pid", int, None), _get(data, "host", str, None), _get(data, "pid_start", str, None),
                   {str(name): DataInput.from_json(_need_dict(item, "data")) for name, item in inputs.items()})


@attrs.frozen
class DataInput:
    """A flow parameter that is data (``fk.File`` / ``fk.Dir``) as the run found it at its start:
    where it was, and the digest of its content (a file's BLAKE3, a folder's tree digest), so that
    ``flowkit datasets`` can tell which version of the data each run read."""

    kind: str  # file | dir
    path: str
    digest: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "digest": self.digest}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "DataInput":
        kind = _get(data, "kind", str)
        if kind not in ("file", "dir"):
            raise RecordError(f"'kind' of a data input is {kind!r}, not 'file' or 'dir'")
        return cls(kind, _get(data, "path", str), _get(data, "digest", str))


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
        return cls(_get(data, "status", str), _get(data, "ended", _NUMBER), _get(data, "error", str, None))


class Records:
    """Reads and writes every kind of record; knows nothing of the index.

    Readers never crash on a bad record: it reads as missing, and scans (reindex, gc, ls) skip it
    with one warning naming its file. The cache-hit read stays silent: a bad key record is a miss,
    and the step that runs again writes it anew."""

    def __init__(self, fs: FileSystem) -> None:
        self.fs = fs
        self._warned: set[str] = set()

    def warn(self, path: str, reason: Any) -> None:
        """Say once per file that a record was skipped, and why."""
        if path not in self._warned:
            self._warned.add(path)
            log.warning("warning: skipped %s: %s", path, reason)

    def _read(self, path: str, *, exact: bool = False) -> dict[str, Any] | None:
        try:
            return loads_json(self.fs.read(path), exact=exact)
        except OSError:
            return None

    def _read_nodes(self, path: str) -> dict[str, Any] | None:
        """A node, key or batch record: by orjson, again by the standard library when a logged
        param may be an integer orjson rounded."""
        data = self._read(path)
        return self._read(path, exact=True) if data is not None and _lossy_logged(data) else data

    def _parse(self, path: str, parse: Callable[[dict[str, Any]], T], data: dict[str, Any] | None) -> T | None:
        """``parse(data)``, or None with a warning when the JSON is not that kind of record."""
        if data is None:
            return None
        try:
            return parse(data)
        except PARSE_ERRORS as exc:
            self.warn(path, f"not a valid record ({exc})")
            return None

    def _read_record(self, path: str, parse: Callable[[dict[str, Any]], T], *, exact: bool = False) -> T | None:
        data = self._read(path, exact=True) if exact else self._read_nodes(path)
        if data is None and self.fs.size(path):
            self.warn(path, "not JSON (torn or damaged)")
        return self._parse(path, parse, data)

    def _write(self, path: str, data: dict[str, Any], exact: Any = None) -> None:
        self.fs.write(path, dumps_json(data, exact=exact))

    # -- cache keys --------------------------------------------------------------------------

    def read_key(self, key: str) -> NodeRecord | None:
        path = layout.key_path(key)
        record = self._parse(path, NodeRecord.from_json, self._read_nodes(path))
        return record if record is not None and record.key == key else None

    def read_hit(self, key: str) -> CacheHit | None:
        """The output of a key record, without the rest: a cached step's one read, on the hot path.
        A record of the wrong shape is a miss (the step runs and writes it again)."""
        data = self._read(layout.key_path(key))
        if not data or data.get("key") != key or not data.get("output"):
            return None
        try:
            metrics = data.get("metrics")
            logged = data.get("logged_params") or {}
            if logged and _lossy(logged):
                logged = (self._read_nodes(layout.key_path(key)) or {}).get("logged_params") or {}
            hit = CacheHit(StoredOutput.from_json(data["output"]),
                           [Metric.from_json(m) for m in metrics] if metrics else [], logged)
        except PARSE_ERRORS:
            return None
        return hit if isinstance(hit.logged_params, dict) else None

    def write_key(self, record: NodeRecord) -> None:
        assert record.key is not None
        self._write(layout.key_path(record.key), record.to_json(), record.logged_params or None)

    def key_files(self) -> list[tuple[str, NodeRecord | None]]:
        """Every file under ``keys/`` but those being written, with its record: None where it is
        not a readable key record (warned)."""
        found: list[tuple[str, NodeRecord | None]] = []
        for path in self.fs.files(layout.KEYS):
            if is_temporary(path):
                continue
            record = self._read_record(path, parse_key_record) if layout.is_key_path(path) else None
            if record is not None and record.key != path.rsplit("/", 1)[1].removesuffix(".json"):
                self.warn(path, f"holds the record of another key ({record.key})")
                record = None
            found.append((path, record))
        return found

    def key_records(self) -> list[NodeRecord]:
        """Every readable key record (for gc, ls and reindex)."""
        return [record for _, record in self.key_files() if record is not None]

    # -- runs --------------------------------------------------------------------------------

    def write_header(self, run_id: str, header: RunHeader) -> None:
        self._write(layout.run_header_path(run_id), header.to_json(), header.params)

    def read_header(self, run_id: str) -> RunHeader | None:
        return self._read_record(layout.run_header_path(run_id), RunHeader.from_json, exact=True)

    def has_header(self, run_id: str) -> bool:
        return self.fs.size(layout.run_header_path(run_id)) is not None

    def write_node(self, record: NodeRecord) -> None:
        """One node's record in a file of its own (run-step: one process per node)."""
        self._write(layout.node_path(record.run_id, record.node), record.to_json(), record.logged_params or None)

    def write_batch(self, run_id: str, records: list[NodeRecord]) -> None:
        """Many node records in one file (in-process runners)."""
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(2)}"
        exact = [r.logged_params for r in records if r.logged_params] or None
        self._write(layout.batch_path(run_id, name), {"records": [r.to_json() for r in records]}, exact)

    def write_end(self, run_id: str, end: RunEnd) -> None:
        self._write(layout.run_end_path(run_id), end.to_json())

    def read_end(self, run_id: str) -> RunEnd | None:
        return self._read_record(layout.run_end_path(run_id), RunEnd.from_json)

    def read_node(self, run_id: str, node: str) -> NodeRecord | None:
        path = layout.node_path(run_id, node)
        record = self._read_record(path, NodeRecord.from_json)
        if record is not None:
            return record
        return next((r for r in self._batch_records(run_id) if r.node == node), None)

    def run_folders(self) -> list[str]:
        """Every folder under ``runs/``: a run, or one being created (its run.json not yet there)."""
        return self.fs.folders(layout.RUNS)

    def run_ids(self) -> list[str]:
        return [run_id for run_id in self.run_folders() if self.has_header(run_id)]

    def node_records(self, run_id: str) -> list[NodeRecord]:
        """Every node record of a run; where a node was recorded twice, the later start wins."""
        latest: dict[str, NodeRecord] = {}
        singles = [self._read_record(path, NodeRecord.from_json)
                   for path in self.fs.files(layout.nodes_folder(run_id))
                   if path.endswith(".json") and not is_temporary(path)]
        for record in [*self._batch_records(run_id), *(r for r in singles if r is not None)]:
            known = latest.get(record.node)
            if known is None or record.started >= known.started:
                latest[record.node] = record
        return list(latest.values())

    def _batch_records(self, run_id: str) -> list[NodeRecord]:
        records: list[NodeRecord] = []
        for path in self.fs.files(layout.batches_folder(run_id)):
            if not path.endswith(".json") or is_temporary(path):
                continue
            batch = self._read_record(path, _batch)
            for i, data in enumerate(batch or ()):
                record = self._parse(f"{path} (record {i + 1})", NodeRecord.from_json, data)
                if record is not None:
                    records.append(record)
        return records


def parse_key_record(data: dict[str, Any]) -> NodeRecord:
    """A key record: a node record that names its key."""
    record = NodeRecord.from_json(data)
    if record.key is None:
        raise RecordError("'key' is missing")
    return record


def _batch(data: dict[str, Any]) -> list[Any]:
    return _get(data, "records", list)
