"""``flowkit cache verify``: every object against its digest, every record parsed, like ``git fsck``.

What is corrupt is removed, so that it is made again instead of failing forever: an object whose
bytes do not hash to its name (its step re-runs), a record that does not parse or is of the
wrong shape, a key record whose object is gone (a cache entry that can never hit), a kept source
of a function whose text does not match its check digest (explain would show wrong lines). A damaged
index is rebuilt from the records. Temporary files are writers' business (``gc`` removes stale
ones) and are not looked at. Slow on purpose: it reads every byte.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Callable

import attrs

from flowkit.keys.values import hash_bytes
from flowkit.store import layout
from flowkit.store.fs import is_temporary
from flowkit.store.index import damaged
from flowkit.store.records import PARSE_ERRORS, NodeRecord, RunEnd, RunHeader, loads_json, parse_key_record
from flowkit.store.store import Store


@attrs.frozen
class Problem:
    """One file found wrong, and what was done about it."""

    path: str
    what: str  # corrupt object | bad record | missing object | damaged index
    detail: str
    action: str  # removed | rebuilt | reported

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Verified:
    """What ``verify`` checked and found."""

    objects: int
    records: int
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"objects": self.objects, "records": self.records, "ok": self.ok,
                "problems": [p.to_json() for p in self.problems]}


def verify(store: Store, *, repair: bool = True) -> Verified:
    """Check everything in the store; with ``repair``, remove what is corrupt and rebuild a damaged index."""
    problems: list[Problem] = []
    action = "removed" if repair else "reported"

    def bad(path: str, what: str, detail: str) -> None:
        problems.append(Problem(path, what, detail, action))
        if repair:
            store.fs.delete(path)

    objects = store.objects.ids()
    present = set()
    for object_id in objects:
        wrong = store.objects.verify(object_id)
        if wrong is None:
            present.add(object_id)
        elif wrong != "missing":  # removed meanwhile (a corrupt load, a gc): nothing to check
            bad(layout.object_path(object_id), "corrupt object", wrong)
    records = 0
    for path in store.fs.files(layout.KEYS):
        if is_temporary(path):
            continue
        records += 1
        record, detail = _parse(store, path, parse_key_record)
        if record is _GONE:
            continue
        if record is None:
            bad(path, "bad record", detail)
        elif record.key != path.rsplit("/", 1)[1].removesuffix(".json"):
            bad(path, "bad record", f"holds the record of key {record.key}")
        elif record.output is not None:
            output = record.output
            if output.inline is not None and hash_bytes(output.inline) != output.object:
                bad(path, "bad record", "its inline output does not match its digest")
            elif output.inline is None and output.object not in present:
                if store.objects.verify(output.object) is None:  # written since the objects were listed
                    present.add(output.object)
                else:
                    bad(path, "missing object", f"its output {output.object[:12]} is gone")
            elif (gone := _missing_file(store, output.object, present)) is not None:
                bad(path, "missing object", f"its output holds a file whose object {gone[:12]} is gone")
    records += _check_sources(store, bad)
    records += _check_manifests(store, bad)
    for run_id in store.records.run_folders():
        for path in store.fs.files(layout.run_folder(run_id)):
            if is_temporary(path) or not path.endswith(".json"):
                continue
            records += 1
            record, detail = _parse(store, path, _parser_for(run_id, path))
            if record is None:
                bad(path, "bad record", detail)
    index = _check_index(store, repair)
    if index is not None:
        problems.append(index)
    return Verified(len(objects), records, tuple(problems))


def _check_sources(store: Store, bad: Callable[[str, str, str], None]) -> int:
    """Every kept source (``store.sources``) read and checked, and every stray file beside them;
    the number of files looked at."""
    digests = store.sources.digests()
    for digest in digests:
        wrong = store.sources.verify(digest)
        if wrong is not None and wrong != "missing":  # removed meanwhile (a gc): nothing to check
            bad(layout.source_path(digest), "bad record", wrong)
    stray = store.sources.stray()
    for path in stray:
        bad(path, "bad record", "not a source record's name")
    return len(digests) + len(stray)


def _missing_file(store: Store, object_id: str, present: set[str]) -> str | None:
    """The first object of a file the output holds (``store.files``) that is not in the store."""
    manifest = store.files.manifest(object_id)
    for file_object in manifest.objects if manifest is not None else ():
        if file_object not in present:
            if store.objects.verify(file_object) is not None:
                return file_object
            present.add(file_object)  # written since the objects were listed
    return None


def _check_manifests(store: Store, bad: Callable[[str, str, str], None]) -> int:
    """Every manifest of an output's files parsed (a damaged one is removed: its output then
    keeps its files no longer, and its step runs again once they are gone); the files looked at."""
    count = 0
    for path in store.fs.files(layout.MANIFESTS):
        if is_temporary(path):
            continue
        count += 1
        object_id = layout.manifest_object(path)
        if object_id is None:
            bad(path, "bad record", "not a manifest's name")
        elif store.fs.size(path) is not None and store.files.manifest(object_id) is None:
            bad(path, "bad record", "not a manifest of an output's files (torn or damaged)")
    return count


def _parser_for(run_id: str, path: str) -> Any:
    if path == layout.run_header_path(run_id):
        return RunHeader.from_json
    if path == layout.run_end_path(run_id):
        return RunEnd.from_json
    if path.startswith(layout.batches_folder(run_id) + "/"):
        return _batch
    return NodeRecord.from_json


_GONE = object()  # a file removed while verify looked (by gc, or a run's own repair)


def _parse(store: Store, path: str, parse: Any) -> tuple[Any, str]:
    """The parsed record, or None and why not."""
    data = store.fs.read(path)
    if data is None:
        return _GONE, ""
    value = loads_json(data, exact=True)
    if value is None:
        return None, "not a JSON object (torn or damaged)"
    try:
        return parse(value), ""
    except PARSE_ERRORS as exc:
        return None, f"not a valid record ({exc})"


def _batch(data: dict[str, Any]) -> list[NodeRecord]:
    records = data.get("records")
    if not isinstance(records, list):
        raise TypeError("'records' is not a list")
    return [NodeRecord.from_json(r) for r in records]


def _check_index(store: Store, repair: bool) -> Problem | None:
    """The index's own check; a damaged one rebuilt from the records."""
    path = store.fs.local(layout.INDEX)
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            conn.close()
        if result == "ok":
            return None
        detail = str(result)
    except sqlite3.DatabaseError as exc:
        if not damaged(exc):
            return None  # locked, or unreadable from here: not a finding about the index itself
        detail = str(exc)
    if repair:
        store.close_index()
        store.index.rebuild(store.records, replace=True)
    return Problem(layout.INDEX, "damaged index", detail, "rebuilt" if repair else "reported")
