"""``flowkit cache ls|du|gc|clear|reindex``: look at the store and clean it."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from .commands import table, when
from .store import Store


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []


def ls(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    """Every cache entry: step, key, output size, when it was made."""
    entries = []
    for path in _files(store.root / "keys"):
        record = store.read_record(path)
        if record and record.get("output"):
            entries.append({"flow": record.get("flow"), "step": record.get("node"), "key": record["key"],
                            "size": record["output"]["size"], "created": record.get("created")})
    entries.sort(key=lambda e: (e["flow"] or "", e["step"] or "", e["created"] or 0))
    rows = [[e["flow"], e["step"], e["key"][:12], _size(e["size"]), when(e["created"])] for e in entries]
    text = table(rows, ["FLOW", "STEP", "KEY", "SIZE", "CREATED"]) if rows else "the cache is empty"
    return {"data": entries, "text": text}


def du(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    """Bytes used by objects, records and the index."""
    sizes = {name: sum(p.stat().st_size for p in _files(store.root / name)) for name in ("objects", "keys", "runs")}
    sizes["index"] = sum(p.stat().st_size for p in store.root.glob("index.sqlite*"))
    sizes["total"] = sum(sizes.values())
    count = len(_files(store.root / "objects"))
    text = "\n".join(f"{name:<8} {_size(size)}" for name, size in sizes.items()) + f"\n{count} objects in {store.root}"
    return {"data": {**sizes, "objects_count": count}, "text": text}


def gc(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    """Drop runs beyond ``--keep`` per flow, then objects and keys no kept run refers to."""
    dropped_runs = _drop_old_runs(store, args.keep) if args.keep is not None else []
    kept = store.index.referenced_objects()
    removed_keys = 0
    for path in _files(store.root / "keys"):
        record = store.read_record(path)
        if record is None or not record.get("output") or record["output"]["object"] not in kept:
            path.unlink(missing_ok=True)
            removed_keys += 1
    removed, freed = 0, 0
    for path in _files(store.root / "objects"):
        if path.name not in kept:  # temporary files of running writers start with "." and are kept
            if path.name.startswith("."):
                continue
            freed += path.stat().st_size
            path.unlink(missing_ok=True)
            removed += 1
    data = {"runs_removed": len(dropped_runs), "objects_removed": removed, "keys_removed": removed_keys, "bytes_freed": freed}
    text = f"removed {len(dropped_runs)} runs, {removed} objects ({_size(freed)}), {removed_keys} cache keys"
    return {"data": data, "text": text}


def _drop_old_runs(store: Store, keep: int) -> list[str]:
    runs = store.index.runs(limit=10**9)
    seen: dict[str, int] = {}
    dropped = []
    for run in runs:  # newest first
        seen[run["flow"]] = seen.get(run["flow"], 0) + 1
        if seen[run["flow"]] > keep and run["status"] != "running":
            shutil.rmtree(store.run_dir(run["run_id"]), ignore_errors=True)
            dropped.append(run["run_id"])
    if dropped:
        store.index.rebuild(store)
    return dropped


def clear(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    store.clear()
    return {"data": {"cleared": str(store.root)}, "text": f"cleared {store.root}"}


def reindex(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    count = store.index.rebuild(store)
    return {"data": {"runs": count}, "text": f"re-indexed {count} runs from the records in {store.root}"}


def _size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024  # type: ignore[assignment]
    return str(size)



