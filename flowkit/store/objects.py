"""Content-addressed objects: serialized outputs and code bundles, verified on every read.

An object's name is the BLAKE3 digest of its bytes; an output's ``digest`` fingerprints the
value, which is what downstream keys use (early cutoff). A small output travels inline in the
records that mention it instead of in a file of its own.
"""

from __future__ import annotations

import base64
import pickle
from collections import OrderedDict
from typing import Any

import attrs

from flowkit.errors import CorruptObject, SerializationError, StoreError, Unstable
from flowkit.keys.values import fingerprint, hash_bytes
from flowkit.store import layout
from flowkit.store.fs import FileSystem

INLINE_BYTES = 2048  # outputs up to this size live in the records, not in files of their own


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
    # the inline bytes as the records hold them, encoded once: a step's record and its index row
    # both carry the output, on a cached step's path
    inline_text: str | None = attrs.field(
        default=attrs.Factory(lambda out: None if out.inline is None else base64.b64encode(out.inline).decode(),
                              takes_self=True), eq=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"object": self.object, "digest": self.digest, "size": self.size}
        if self.inline_text is not None:
            data["inline"] = self.inline_text
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "StoredOutput":
        """TypeError for a record of the wrong shape: a reader treats it as no output at all."""
        inline, object_id, digest, size = data.get("inline"), data["object"], data["digest"], data["size"]
        if not (isinstance(object_id, str) and isinstance(digest, str) and isinstance(size, int)
                and not isinstance(size, bool) and (inline is None or isinstance(inline, str))):
            raise TypeError("an output needs object and digest as text, size as an integer")
        return cls(object_id, digest, size, base64.b64decode(inline, validate=True) if inline is not None else None,
                   inline)


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


class Objects:
    """The objects of one store."""

    def __init__(self, fs: FileSystem, where: str) -> None:
        self.fs = fs
        self._where = where  # the store, for messages
        self._recent = _RecentBytes()

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
        self._write_once(object_id, data)
        self._recent.add(object_id, data)
        return StoredOutput(object_id, digest, len(data))

    def put_bytes(self, data: bytes) -> str:
        """Store raw bytes (a code bundle) under their digest."""
        object_id = hash_bytes(data)
        self._write_once(object_id, data)
        return object_id

    def _write_once(self, object_id: str, data: bytes) -> None:
        """Write the object unless a file of its size is there already (the same bytes, by their
        digest). A file of another size is a damaged copy: written over, or its step would re-run
        on every run. A reused file is touched, so that ``gc`` sees it as fresh (a writer is about
        to record it)."""
        path = layout.object_path(object_id)
        if self.fs.size(path) == len(data):
            try:
                self.fs.touch(path)
            except StoreError:
                pass  # a read-only copy of the right bytes serves as well
        else:
            self.fs.write(path, data)

    def get_bytes(self, object_id: str) -> bytes:
        """Raw bytes by digest, verified; a missing or corrupt object is a StoreError."""
        data = self.fs.read(layout.object_path(object_id))
        if data is None:
            raise StoreError(f"store {self._where} has no object {object_id}",
                             hint="compile again with --bundle against this store")
        if hash_bytes(data) != object_id:
            raise StoreError(f"object {object_id} in store {self._where} is corrupt",
                             hint="compile again with --bundle to write it anew")
        return data

    def has(self, output: StoredOutput) -> bool:
        """A cheap presence check (size), used for cache hits; the digest is checked on load."""
        return output.inline is not None or self.fs.size(layout.object_path(output.object)) == output.size

    def load(self, output: StoredOutput | str) -> Any:
        """Read, verify and deserialize an output (a StoredOutput, or a file's object id).

        A digest mismatch removes the file and raises CorruptObject. Bytes this process wrote a
        moment ago are taken from memory: they are the bytes it hashed.
        """
        if isinstance(output, StoredOutput) and output.inline is not None:
            if hash_bytes(output.inline) != output.object:
                raise CorruptObject(f"inline object {output.object} is corrupt (digest mismatch)")
            return pickle.loads(output.inline)
        object_id = output.object if isinstance(output, StoredOutput) else output
        data = self._recent.get(object_id)
        if data is None:
            path = layout.object_path(object_id)
            data = self.fs.read(path)
            if data is None:
                raise CorruptObject(f"object {object_id} is missing")
            if hash_bytes(data) != object_id:
                self.fs.delete(path)
                raise CorruptObject(f"object {object_id} is corrupt (digest mismatch); removed")
        return pickle.loads(data)

    def ids(self) -> list[str]:
        """Every object's id (temporary files of running or killed writers left out)."""
        return [path.rsplit("/", 1)[1] for path in self.fs.files(layout.OBJECTS)
                if not path.rsplit("/", 1)[1].startswith(".")]

    def verify(self, object_id: str) -> str | None:
        """What is wrong with an object file (None: nothing); reads all of it."""
        data = self.fs.read(layout.object_path(object_id))
        if data is None:
            return "missing"
        digest = hash_bytes(data)
        return None if digest == object_id else f"corrupt: its bytes hash to {digest[:12]}"

    def is_bundle(self, object_id: str) -> bool:
        """A code bundle (``compile --bundle``): a zip, where outputs are pickles. No record names a
        bundle, so ``gc`` asks this before removing an object no record refers to."""
        return self.fs.read(layout.object_path(object_id), limit=4) == b"PK\x03\x04"
