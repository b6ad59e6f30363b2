"""The store: content-addressed objects plus small immutable records, indexed in SQLite.

Layout under the root::

    objects/ab/<blake3 of the bytes>       serialized outputs over 2 KiB (smaller ones are inline in
                                             the records), verified on every read
    keys/ab/<cache key>.json                 key parts + output of one step execution
    runs/<run id>/run.json                   flow, params, node list (written once at start)
    runs/<run id>/nodes/<node>.json          one node's outcome, from run-step (one process per node)
    runs/<run id>/batches/<time>-<pid>.json  node outcomes of in-process runners, written in batches
    runs/<run id>/end.json                   final status (written once at the end)
    index.sqlite                             history index, rebuilt from the records by reindex

Every file is written to a temporary name and renamed, so a killed process never leaves a
partial file under a real name; records are never modified, so runs on many machines need no lock.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import secrets
import shutil
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

import attrs
import orjson

from .errors import SerializationError, StoreError
from .hashing import Unstable, fingerprint, hash_bytes

DEFAULT_STORE = ".flowkit"
INLINE_BYTES = 2048  # outputs up to this size live in the records, not in files of their own


class CorruptObject(Exception):
    """An object whose bytes do not match its digest: treated as missing, never loaded."""


@attrs.frozen
class StoredOutput:
    """Where a step's output lives: ``object`` addresses the bytes, ``digest`` fingerprints the value.

    A small output travels ``inline`` inside the records that mention it instead of in a file of
    its own: a step that returns a number then costs one file, not two.
    """

    object: str
    digest: str
    size: int
    inline: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"object": self.object, "digest": self.digest, "size": self.size}
        if self.inline is not None:
            data["inline"] = base64.b64encode(self.inline).decode()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "StoredOutput":
        inline = data.get("inline")
        return cls(data["object"], data["digest"], int(data["size"]),
                   base64.b64decode(inline) if inline is not None else None)


def serialize(value: Any, where: str) -> bytes:
    """Pickle (protocol 5) when it can, dill when it must: functions, lambdas, ``__main__`` classes.

    Plain pickle is several times faster for the common case; ``pickle.loads`` reads both.
    """
    try:
        data = pickle.dumps(value, protocol=5)
        if b"__main__" not in data:
            return data
    except Exception:  # noqa: BLE001 - pickle raises many types for what dill handles
        pass
    import dill

    try:
        return dill.dumps(value, protocol=5, recurse=True)
    except Exception as exc:  # noqa: BLE001
        raise SerializationError(
            f"{where}: output of type {type(value).__module__}.{type(value).__qualname__} cannot be serialized: {exc}",
            hint="return plain data (numbers, lists, dicts, arrays, frames) or write files and return fk.File",
        ) from None


class _RecentBytes:
    """The last objects this process wrote, up to a byte budget, so a downstream step skips the read."""

    def __init__(self, budget: int = 64 * 2**20) -> None:
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._budget = budget

    def add(self, object_id: str, data: bytes) -> None:
        if len(data) > self._budget // 4 or object_id in self._items:
            return
        self._items[object_id] = data
        self._size += len(data)
        while self._size > self._budget:
            self._size -= len(self._items.popitem(last=False)[1])

    def get(self, object_id: str) -> bytes | None:
        return self._items.get(object_id)


_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def dumps_json(data: Any) -> bytes:
    """JSON bytes for records, sorted keys. orjson: encoding and reading records is a fifth of a
    cached step's time with the standard library; it falls back to it for what orjson refuses
    (integers over 64 bits)."""
    try:
        return orjson.dumps(data, option=_ORJSON_OPTIONS, default=repr)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(data, sort_keys=True, separators=(",", ":"), default=repr).encode()


def node_filename(name: str) -> str:
    """A node name as a safe, reversible file name (names may hold any character)."""
    return quote(name, safe="-_") + ".json"


def store_path(spec: str | os.PathLike[str] | None) -> Path:
    """``--store`` / ``FLOWKIT_STORE`` / ``.flowkit``, accepting plain paths and ``file://`` URIs."""
    raw = os.fspath(spec) if spec is not None else os.environ.get("FLOWKIT_STORE") or DEFAULT_STORE
    if "://" in raw:
        parsed = urlparse(raw)
        if parsed.scheme != "file":
            raise StoreError(
                f"store {raw!r}: scheme {parsed.scheme!r} is not supported yet",
                hint="use a local or mounted path, or a file:// URI",
            )
        raw = unquote(parsed.path)
    return Path(raw).expanduser().absolute()


class Store:
    """Objects and records under one root; see the module docstring for the layout."""

    def __init__(self, root: Path, *, create: bool = True) -> None:
        self.root = root
        self._root = str(root)
        self.writable = create
        if create:
            self._ensure_writable()
        self._index: Any = None
        self._recent = _RecentBytes()

    def _ensure_writable(self) -> None:
        try:
            (self.root / "objects").mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe-{os.getpid()}-{secrets.token_hex(4)}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StoreError(
                f"store {self.root} is not writable: {exc.strerror or exc}",
                hint="pass --store DIR (or set FLOWKIT_STORE) to a folder you can write",
            ) from None

    # -- files -------------------------------------------------------------------------------

    @staticmethod
    def write_file(path: str | Path, data: bytes | memoryview) -> None:
        """Write to a temporary name in the same folder, then rename over the real one."""
        folder, name = os.path.split(os.fspath(path))
        tmp = f"{folder}/.{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileNotFoundError:
                os.makedirs(folder, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise StoreError(f"cannot write {path}: {exc.strerror or exc}",
                             hint="check free space and permissions of that folder") from None

    def write_record(self, path: str | Path, data: Any) -> None:
        self.write_file(path, dumps_json(data))

    @staticmethod
    def read_record(path: str | Path) -> dict[str, Any] | None:
        """A JSON record, or None when missing or unreadable (a torn file counts as missing)."""
        try:
            with open(path, "rb") as handle:
                data = orjson.loads(handle.read())
        except (OSError, ValueError):  # orjson.JSONDecodeError is a ValueError
            return None
        return data if isinstance(data, dict) else None

    # -- objects -----------------------------------------------------------------------------

    def object_path(self, object_id: str) -> Path:
        return Path(self._object_file(object_id))

    def _object_file(self, object_id: str) -> str:
        return f"{self._root}/objects/{object_id[:2]}/{object_id}"

    def put(self, value: Any, *, where: str) -> StoredOutput:
        """Serialize and store a value; its value digest drives downstream keys (early cutoff)."""
        data = serialize(value, where)
        object_id = hash_bytes(data)
        try:
            digest = fingerprint(value)
        except Unstable:
            digest = object_id  # the bytes are the best identity we have
        if len(data) <= INLINE_BYTES:
            return StoredOutput(object_id, digest, len(data), inline=data)
        path = self._object_file(object_id)
        if not os.path.exists(path):
            self.write_file(path, data)
        self._recent.add(object_id, data)
        return StoredOutput(object_id, digest, len(data))

    def put_bytes(self, data: bytes) -> str:
        """Store raw bytes (a code bundle) under their digest."""
        object_id = hash_bytes(data)
        path = self._object_file(object_id)
        if not os.path.exists(path):
            self.write_file(path, data)
        return object_id

    def get_bytes(self, object_id: str) -> bytes:
        """Raw bytes by digest, verified; a missing or corrupt object is a StoreError."""
        try:
            with open(self._object_file(object_id), "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            raise StoreError(f"store {self.root} has no object {object_id}",
                             hint="compile again with --bundle against this store") from None
        if hash_bytes(data) != object_id:
            raise StoreError(f"object {object_id} in store {self.root} is corrupt",
                             hint="compile again with --bundle to write it anew")
        return data

    def has(self, output: StoredOutput) -> bool:
        """A cheap presence check (size), used for cache hits; the digest is checked on load."""
        if output.inline is not None:
            return True
        try:
            return os.stat(self._object_file(output.object)).st_size == output.size
        except OSError:
            return False

    def load(self, output: "StoredOutput | dict[str, Any] | str") -> Any:
        """Read, verify and deserialize an output (a StoredOutput, its JSON, or a file's object id).

        A digest mismatch quarantines the file and raises CorruptObject. Bytes this process wrote a
        moment ago are taken from memory: they are the bytes it hashed.
        """
        if isinstance(output, dict):
            output = StoredOutput.from_json(output)
        if isinstance(output, StoredOutput) and output.inline is not None:
            if hash_bytes(output.inline) != output.object:
                raise CorruptObject(f"inline object {output.object} is corrupt (digest mismatch)")
            return pickle.loads(output.inline)
        object_id = output.object if isinstance(output, StoredOutput) else output
        data = self._recent.get(object_id)
        if data is None:
            path = self._object_file(object_id)
            try:
                with open(path, "rb") as handle:
                    data = handle.read()
            except FileNotFoundError:
                raise CorruptObject(f"object {object_id} is missing") from None
            if hash_bytes(data) != object_id:
                os.unlink(path)
                raise CorruptObject(f"object {object_id} is corrupt (digest mismatch); removed")
        return pickle.loads(data)

    # -- cache keys --------------------------------------------------------------------------

    def _key_file(self, key: str) -> str:
        return f"{self._root}/keys/{key[:2]}/{key}.json"

    def read_key(self, key: str) -> dict[str, Any] | None:
        record = self.read_record(self._key_file(key))
        return record if record and record.get("key") == key else None

    def write_key(self, key: str, record: dict[str, Any]) -> None:
        self.write_record(self._key_file(key), {**record, "key": key})

    def parts_of(self, record: dict[str, Any] | None) -> dict[str, Any] | None:
        """A node record's key parts: in the record itself, or in the key record it points to."""
        if record is None:
            return None
        if record.get("parts"):
            return record["parts"]
        key_record = self.read_key(record["key"]) if record.get("key") else None
        return key_record.get("parts") if key_record else None

    def key_records(self) -> list[dict[str, Any]]:
        """Every readable key record (for gc, ls and reindex)."""
        folder = self.root / "keys"
        paths = sorted(folder.glob("*/*.json")) if folder.is_dir() else []
        return [r for r in map(self.read_record, paths) if r is not None and "key" in r]

    # -- runs --------------------------------------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def write_run_start(self, run_id: str, header: dict[str, Any]) -> None:
        self.write_record(self.run_dir(run_id) / "run.json", header)
        self.index.add_run(run_id, header)

    def ensure_run_start(self, run_id: str, header: dict[str, Any]) -> None:
        """Record a run started elsewhere (an orchestrator) once; later callers leave it as is."""
        if not (self.run_dir(run_id) / "run.json").exists():
            self.write_run_start(run_id, header)

    def write_node(self, run_id: str, record: dict[str, Any]) -> None:
        """One node's record in a file of its own (run-step: one process per node)."""
        self.write_record(self.run_dir(run_id) / "nodes" / node_filename(record["node"]), record)
        self.index.add_nodes(run_id, [record])

    def write_nodes(self, run_id: str, records: list[dict[str, Any]], index: Any = None) -> None:
        """Many node records in one file and one index transaction (in-process runners); ``index``
        is the calling thread's own connection, where it is not the store's."""
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(2)}.json"
        self.write_record(f"{self._root}/runs/{run_id}/batches/{name}", {"records": records})
        (index or self.index).add_nodes(run_id, records)

    def write_run_end(self, run_id: str, end: dict[str, Any]) -> None:
        self.write_record(self.run_dir(run_id) / "end.json", end)
        self.index.end_run(run_id, end)

    def read_run(self, run_id: str) -> dict[str, Any] | None:
        return self.read_record(self.run_dir(run_id) / "run.json")

    def read_node(self, run_id: str, node: str) -> dict[str, Any] | None:
        record = self.read_record(self.run_dir(run_id) / "nodes" / node_filename(node))
        if record is None:
            record = next((r for r in self._batch_records(run_id) if r["node"] == node), None)
        return record

    def run_ids(self) -> list[str]:
        try:
            return sorted(p.name for p in (self.root / "runs").iterdir() if (p / "run.json").exists())
        except FileNotFoundError:
            return []

    def node_records(self, run_id: str) -> list[dict[str, Any]]:
        """Every node record of a run; where a node was recorded twice, the later start wins."""
        latest: dict[str, dict[str, Any]] = {}
        folder = self.run_dir(run_id) / "nodes"
        singles = [self.read_record(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
        for record in [*self._batch_records(run_id), *filter(None, singles)]:
            known = latest.get(record["node"])
            if known is None or (record.get("started") or 0) >= (known.get("started") or 0):
                latest[record["node"]] = record
        return list(latest.values())

    def _batch_records(self, run_id: str) -> list[dict[str, Any]]:
        folder = self.run_dir(run_id) / "batches"
        records: list[dict[str, Any]] = []
        if folder.is_dir():
            for path in sorted(folder.glob("*.json")):
                records += (self.read_record(path) or {}).get("records", [])
        return records

    # -- index -------------------------------------------------------------------------------

    @property
    def index(self) -> Any:
        """The SQLite history index, opened on first use."""
        if self._index is None:
            from .index import Index

            self._index = Index(self.root / "index.sqlite", readonly=not self.writable)
        return self._index

    def after_fork(self) -> None:
        """In a forked child: never use the parent's SQLite connection (SQLite forbids it)."""
        self._index = None

    def clear(self) -> None:
        """Remove every object, record and the index."""
        if self._index is not None:
            self._index.close()
            self._index = None
        for name in ("objects", "keys", "runs", "index.sqlite", "index.sqlite-wal", "index.sqlite-shm"):
            path = self.root / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)


def open_store(spec: Any = None, *, create: bool = True) -> Store:
    """A Store from ``--store`` / ``FLOWKIT_STORE`` / default; ``create=False`` writes nothing."""
    if isinstance(spec, Store):
        return spec
    return Store(store_path(spec), create=create)
