"""The normalized source of the functions cache keys name, kept so that ``explain`` can show the
lines that changed, not only which function did.

A key's code part names each function and class of a step's code by its digest; ``sources/``
keeps, per digest, the text that digest is made from (docstrings, comments and formatting gone:
``keys.code.code_sources``). One small record per digest, written once and atomically the
first time a step with that function runs and writes its key record, and checked against the
BLAKE3 of its text on every read. A missing source is no error (a store older than this, a
killed writer, a gc): ``explain`` says it was not kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import attrs

from flowkit.errors import StoreError, Unstable
from flowkit.keys.code import code_sources
from flowkit.keys.parts import KeyParts
from flowkit.keys.values import hash_bytes
from flowkit.store import layout
from flowkit.store.fs import FileSystem, is_temporary
from flowkit.store.records import PARSE_ERRORS, RecordError, dumps_json, loads_json

log = logging.getLogger("flowkit.store")


@attrs.frozen
class SourceRecord:
    """One function's normalized source, named by its code digest; ``check`` is the BLAKE3 of the
    text, so a damaged file is told from a sound one."""

    digest: str
    text: str
    check: str

    @classmethod
    def of(cls, digest: str, text: str) -> "SourceRecord":
        return cls(digest, text, hash_bytes(text.encode()))

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "text": self.text, "check": self.check}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SourceRecord":
        fields = [data.get(name) for name in ("digest", "text", "check")]
        if not all(isinstance(value, str) for value in fields):
            raise RecordError("a source record needs digest, text and check as text")
        return cls(*fields)

    def problem(self, digest: str) -> str | None:
        """What is wrong with this record read from the file of ``digest`` (None: nothing)."""
        if self.digest != digest:
            return f"holds the source of {self.digest[:12]}"
        if hash_bytes(self.text.encode()) != self.check:
            return "its text does not match its check digest"
        return None


def code_digests(parts: KeyParts | None) -> set[str]:
    """The digests of the code parts of a key (values included: a source never has their name)."""
    return set(parts.code.parts.values()) if parts is not None else set()


class Sources:
    """The kept sources of one store."""

    def __init__(self, fs: FileSystem) -> None:
        self.fs = fs
        self._settled: set[str] = set()  # digests this process found kept, or could not keep (no source)
        self._warned = False

    def record(self, parts: KeyParts | None, func: Callable[..., Any]) -> int:
        """Keep the source of each function of a key's code part that is not kept yet (``func``: the
        step's function); the number written. Costs one existence check per function the first time
        this process sees its digest, and a walk of the code only when one is new: a step whose
        code is unchanged writes nothing."""
        if parts is None:
            return 0
        code = parts.code
        values = set(code.values)
        new = {digest for name, digest in code.parts.items()
               if name not in values and digest not in self._settled and not self.has(digest)}
        self._settled.update(code.parts.values())
        if not new:
            return 0
        try:
            texts = code_sources(func)
        except Unstable:
            return 0
        written = 0
        for digest, text in texts.values():
            if digest in new:
                written += self._put(digest, text)
        return written

    def _put(self, digest: str, text: str) -> int:
        """Write one record; a store that refuses it is warned about once (the key record is what
        matters, and its own write says so)."""
        try:
            self.fs.write(layout.source_path(digest), dumps_json(SourceRecord.of(digest, text).to_json()))
        except StoreError as exc:
            if not self._warned:
                self._warned = True
                log.warning("warning: the source of a function was not kept (%s): explain will not show its lines",
                            exc.message)
            return 0
        return 1

    def has(self, digest: str) -> bool:
        return self.fs.size(layout.source_path(digest)) is not None

    def get(self, digest: str) -> str | None:
        """The normalized source of ``digest``, verified; None when it is missing or damaged."""
        record = self._read(digest)
        return record.text if isinstance(record, SourceRecord) else None

    def verify(self, digest: str) -> str | None:
        """What is wrong with the file of ``digest`` (None: nothing; ``missing``: gone meanwhile)."""
        record = self._read(digest)
        return record if isinstance(record, str) else None

    def _read(self, digest: str) -> SourceRecord | str:
        data = self.fs.read(layout.source_path(digest))
        if data is None:
            return "missing"
        value = loads_json(data)
        if value is None:
            return "not a JSON object (torn or damaged)"
        try:
            record = SourceRecord.from_json(value)
        except PARSE_ERRORS as exc:
            return f"not a valid source record ({exc})"
        return record.problem(digest) or record

    def digests(self) -> list[str]:
        """Every kept source's digest (files being written left out)."""
        found = [layout.source_digest(path) for path in self.fs.files(layout.SOURCES) if not is_temporary(path)]
        return [digest for digest in found if digest is not None]

    def stray(self) -> list[str]:
        """Files under ``sources/`` that are no source record's (for ``verify``)."""
        return [path for path in self.fs.files(layout.SOURCES)
                if not is_temporary(path) and layout.source_digest(path) is None]

