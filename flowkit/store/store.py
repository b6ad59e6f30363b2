"""The store: content-addressed objects plus small immutable records, indexed in SQLite.

``Store`` puts the parts together over one ``FileSystem`` (``layout`` says where each file
lives): ``objects`` for outputs, ``records`` for what ran, ``sources`` for the normalized code
the keys name, ``logs`` for what steps printed, ``index`` for queries over the history. Records are never modified, so runs on many machines need no lock.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from flowkit.errors import StoreError
from flowkit.keys.parts import KeyParts
from flowkit.store import layout
from flowkit.store.files import Files, with_data_inputs
from flowkit.store.fs import LocalFS
from flowkit.store.index import Index
from flowkit.store.logs import Logs
from flowkit.store.objects import Objects, StoredOutput
from flowkit.store.records import NodeRecord, Records, RunEnd, RunHeader
from flowkit.store.sources import Sources

DEFAULT_STORE = ".flowkit"


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
    """Objects, records and the index of one store root."""

    def __init__(self, root: Path, *, create: bool = True) -> None:
        self.root = root
        self.fs = LocalFS(root)
        self.writable = create
        if create:
            self._ensure_writable()
        self.objects = Objects(self.fs, str(root))
        self.files = Files(self.fs, self.objects)  # outputs' fk.File / fk.Dir parts, by content
        self.records = Records(self.fs)
        self.sources = Sources(self.fs)
        self.logs = Logs(self.fs)
        self._index: Index | None = None

    def _ensure_writable(self) -> None:
        try:
            (self.root / layout.OBJECTS).mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe-{os.getpid()}-{secrets.token_hex(4)}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StoreError(
                f"store {self.root} is not writable: {exc.strerror or exc}",
                hint="pass --store DIR (or set FLOWKIT_STORE) to a folder you can write",
            ) from None

    # -- objects: the facade's shortcuts; flowkit's own code calls ``objects`` ------------------

    def put(self, value: Any, *, where: str) -> StoredOutput:
        return self.files.put_output(value, where=where)

    def has(self, output: StoredOutput) -> bool:
        return self.objects.has(output)

    def load(self, output: StoredOutput | dict[str, Any] | str) -> Any:
        """An output's value, verified: from a StoredOutput, its JSON (as ``runs``/``show --json``
        print it), or an object id."""
        return self.files.load_output(StoredOutput.from_json(output) if isinstance(output, dict) else output)

    def object_path(self, object_id: str) -> Path:
        """The file of an object on this machine (for tools and tests)."""
        return self.fs.local(layout.object_path(object_id))

    # -- cache keys --------------------------------------------------------------------------

    def parts_of(self, record: NodeRecord | None) -> KeyParts | None:
        """A node record's key parts: in the record itself, or in the key record it points to."""
        if record is None:
            return None
        if record.parts is not None:
            return record.parts
        key_record = self.records.read_key(record.key) if record.key else None
        return key_record.parts if key_record else None

    # -- runs: every write goes to the records, then to the index ------------------------------

    def write_run_start(self, run_id: str, header: RunHeader) -> None:
        header = with_data_inputs(header)  # fk.File / fk.Dir parameters: their paths, and their content's digest
        self.records.write_header(run_id, header)
        self.index.add_run(run_id, header)

    def ensure_run_start(self, run_id: str, header: RunHeader) -> None:
        """Record a run started elsewhere (an orchestrator) once; later callers leave it as is."""
        if not self.records.has_header(run_id):
            self.write_run_start(run_id, header)

    def write_node(self, record: NodeRecord) -> None:
        """One node's record in a file of its own (run-step: one process per node)."""
        self.records.write_node(record)
        self.index.add_nodes(record.run_id, [record])

    def write_nodes(self, run_id: str, records: list[NodeRecord], index: Index | None = None) -> None:
        """Many node records in one file and one index transaction (in-process runners); ``index``
        is the calling thread's own connection, where it is not the store's."""
        self.records.write_batch(run_id, records)
        (index or self.index).add_nodes(run_id, records)

    def write_run_end(self, run_id: str, end: RunEnd) -> None:
        self.records.write_end(run_id, end)
        self.index.end_run(run_id, end)

    def read_node(self, run_id: str, node: str) -> NodeRecord | None:
        return self.records.read_node(run_id, node)

    def node_records(self, run_id: str) -> list[NodeRecord]:
        return self.records.node_records(run_id)

    # -- index -------------------------------------------------------------------------------

    @property
    def index(self) -> Index:
        """The SQLite history index, opened on first use."""
        if self._index is None:
            self._index = self.open_index()
        return self._index

    def open_index(self) -> Index:
        """A connection of its own (SQLite connections belong to one thread)."""
        return Index(self.fs.local(layout.INDEX), readonly=not self.writable, records=self.records)

    def close_index(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    def after_fork(self) -> None:
        """In a forked child: never use the parent's SQLite connection (SQLite forbids it)."""
        self._index = None


def open_store(spec: Any = None, *, create: bool = True) -> Store:
    """A Store from ``--store`` / ``FLOWKIT_STORE`` / default; ``create=False`` writes nothing."""
    if isinstance(spec, Store):
        return spec
    return Store(store_path(spec), create=create)
