"""The store: content-addressed objects plus small immutable records, indexed in SQLite.

Layout under the root::

    objects/ab/<blake3 of the bytes>       serialized outputs (dill), verified on every read
    keys/ab/<cache key>.json                 key parts + output of one step execution
    runs/<run id>/run.json                   flow, params, node list (written once at start)
    runs/<run id>/nodes/<node>.json          one node's outcome (written once when it finishes)
    runs/<run id>/end.json                   final status (written once at the end)
    index.sqlite                             history index, rebuilt from the records by reindex

Every file is written to a temporary name and renamed, so a killed process never leaves a
partial file under a real name; records are never modified, so runs on many machines need no lock.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, unquote, urlparse

import attrs

from .errors import SerializationError, StoreError
from .hashing import Unstable, fingerprint, hash_bytes

DEFAULT_STORE = ".flowkit"


class CorruptObject(Exception):
    """An object whose bytes do not match its digest: treated as missing, never loaded."""


@attrs.frozen
class StoredOutput:
    """Where a step's output lives: ``object`` addresses the bytes, ``digest`` fingerprints the value."""

    object: str
    digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"object": self.object, "digest": self.digest, "size": self.size}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "StoredOutput":
        return cls(data["object"], data["digest"], int(data["size"]))


def dumps_json(data: Any) -> bytes:
    """Canonical JSON bytes for records (sorted keys, no NaN surprises)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=repr).encode()


def node_filename(name: str) -> str:
    """A node name as a safe, reversible file name (names may hold any character)."""
    return quote(name, safe="-_") + ".json"


def node_from_filename(filename: str) -> str:
    return unquote(filename[: -len(".json")])


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
        self.writable = create
        if create:
            self._ensure_writable()
        self._index: Any = None

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
    def write_file(path: Path, data: bytes | memoryview) -> None:
        """Write to a temporary name in the same folder, then rename over the real one."""
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileNotFoundError:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write {path}: {exc.strerror or exc}",
                             hint="check free space and permissions of that folder") from None

    def write_record(self, path: Path, data: dict[str, Any]) -> None:
        self.write_file(path, dumps_json(data))

    @staticmethod
    def read_record(path: Path) -> dict[str, Any] | None:
        """A JSON record, or None when missing or unreadable (a torn file counts as missing)."""
        try:
            with open(path, "rb") as handle:
                data = json.loads(handle.read())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    # -- objects -----------------------------------------------------------------------------

    def object_path(self, object_id: str) -> Path:
        return self.root / "objects" / object_id[:2] / object_id

    def put(self, value: Any, *, where: str) -> StoredOutput:
        """Serialize and store a value; its value digest drives downstream keys (early cutoff)."""
        import dill

        try:
            data = dill.dumps(value, protocol=5)
        except Exception as exc:  # dill raises many types for unpicklable values
            raise SerializationError(
                f"{where}: output of type {type(value).__module__}.{type(value).__qualname__} cannot be serialized: {exc}",
                hint="return plain data (numbers, lists, dicts, arrays, frames) or write files and return fk.File",
            ) from None
        object_id = hash_bytes(data)
        try:
            digest = fingerprint(value)
        except Unstable:
            digest = object_id  # the bytes are the best identity we have
        path = self.object_path(object_id)
        if not path.exists():
            self.write_file(path, data)
        return StoredOutput(object_id, digest, len(data))

    def has(self, output: StoredOutput) -> bool:
        """A cheap presence check (size), used for cache hits; the digest is checked on load."""
        try:
            return self.object_path(output.object).stat().st_size == output.size
        except OSError:
            return False

    def load(self, object_id: str) -> Any:
        """Read, verify and deserialize an object; a mismatch is quarantined and raises CorruptObject."""
        import dill

        path = self.object_path(object_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise CorruptObject(f"object {object_id} is missing") from None
        if hash_bytes(data) != object_id:
            path.unlink(missing_ok=True)
            raise CorruptObject(f"object {object_id} is corrupt (digest mismatch); removed")
        return dill.loads(data)

    # -- cache keys --------------------------------------------------------------------------

    def key_path(self, key: str) -> Path:
        return self.root / "keys" / key[:2] / f"{key}.json"

    def read_key(self, key: str) -> dict[str, Any] | None:
        record = self.read_record(self.key_path(key))
        return record if record and record.get("key") == key else None

    def write_key(self, key: str, record: dict[str, Any]) -> None:
        self.write_record(self.key_path(key), {**record, "key": key})

    def drop_key(self, key: str) -> None:
        self.key_path(key).unlink(missing_ok=True)

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
        self.write_record(self.run_dir(run_id) / "nodes" / node_filename(record["node"]), record)
        self.index.add_node(run_id, record)

    def write_run_end(self, run_id: str, end: dict[str, Any]) -> None:
        self.write_record(self.run_dir(run_id) / "end.json", end)
        self.index.end_run(run_id, end)

    def read_run(self, run_id: str) -> dict[str, Any] | None:
        return self.read_record(self.run_dir(run_id) / "run.json")

    def read_node(self, run_id: str, node: str) -> dict[str, Any] | None:
        return self.read_record(self.run_dir(run_id) / "nodes" / node_filename(node))

    def run_ids(self) -> list[str]:
        try:
            return sorted(p.name for p in (self.root / "runs").iterdir() if (p / "run.json").exists())
        except FileNotFoundError:
            return []

    def node_records(self, run_id: str) -> Iterator[dict[str, Any]]:
        folder = self.run_dir(run_id) / "nodes"
        if folder.is_dir():
            for path in sorted(folder.glob("*.json")):
                record = self.read_record(path)
                if record is not None:
                    yield record

    # -- index -------------------------------------------------------------------------------

    @property
    def index(self) -> Any:
        """The SQLite history index, opened on first use."""
        if self._index is None:
            from .index import Index

            self._index = Index(self.root / "index.sqlite", readonly=not self.writable)
        return self._index

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
