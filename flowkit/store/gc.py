"""Looking at a store and cleaning it: cache entries, sizes, garbage collection, clear, reindex.

Each operation takes named parameters and returns plain data; the CLI words it.
"""

from __future__ import annotations

from typing import Any

import attrs

from flowkit.store import layout
from flowkit.store.store import Store


@attrs.frozen
class Entry:
    """One cache entry: the step that made it, its key, its output's size."""

    flow: str | None
    step: str | None
    key: str
    size: int
    created: float | None

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def entries(store: Store) -> list[Entry]:
    """Every cache entry with an output, by flow, step and age."""
    found = [Entry(r.flow, r.node, r.key or "", r.output.size, r.created)
             for r in store.records.key_records() if r.output is not None]
    return sorted(found, key=lambda e: (e.flow or "", e.step or "", e.created or 0))


def usage(store: Store) -> dict[str, int]:
    """Bytes used by objects, records and the index, and the number of objects."""
    fs = store.fs
    sizes = {name: sum(fs.size(path) or 0 for path in fs.files(name)) for name in (layout.OBJECTS, layout.KEYS, layout.RUNS)}
    sizes["index"] = sum(fs.size(name) or 0 for name in layout.INDEX_FILES)
    sizes["total"] = sum(sizes.values())
    sizes["objects_count"] = len(fs.files(layout.OBJECTS))
    return sizes


@attrs.frozen
class Collected:
    """What ``gc`` removed."""

    runs_removed: int
    objects_removed: int
    keys_removed: int
    bytes_freed: int

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def collect(store: Store, keep: int | None = None) -> Collected:
    """Drop runs beyond ``keep`` per flow, then objects and keys no kept run refers to."""
    dropped_runs = _drop_old_runs(store, keep) if keep is not None else []
    kept = store.index.referenced_objects()
    removed_keys = 0
    for path, record in store.records.key_files():
        if record is None or record.output is None or record.output.object not in kept:
            store.fs.delete(path)
            removed_keys += 1
    removed, freed = 0, 0
    for object_id in store.objects.ids():  # temporary files of running writers are not ids: kept
        if object_id not in kept:
            path = layout.object_path(object_id)
            freed += store.fs.size(path) or 0
            store.fs.delete(path)
            removed += 1
    return Collected(len(dropped_runs), removed, removed_keys, freed)


def _drop_old_runs(store: Store, keep: int) -> list[str]:
    runs = store.index.runs(limit=10**9)
    seen: dict[str, int] = {}
    dropped = []
    for run in runs:  # newest first
        seen[run["flow"]] = seen.get(run["flow"], 0) + 1
        if seen[run["flow"]] > keep and run["status"] != "running":
            store.fs.delete_tree(layout.run_folder(run["run_id"]))
            dropped.append(run["run_id"])
    if dropped:
        reindex(store)
    return dropped


def clear(store: Store) -> None:
    """Remove every object, record and the index."""
    store.close_index()
    for name in layout.TOP_LEVEL:
        store.fs.delete_tree(name)
        store.fs.delete(name)


def reindex(store: Store) -> int:
    """Rebuild the index from the records; the number of runs."""
    return store.index.rebuild(store.records)
