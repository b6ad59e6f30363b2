"""``flowkit cache ls|du|gc|clear|reindex``: look at the store and clean it (``store.gc`` does it)."""

from __future__ import annotations

import argparse
from typing import Any

from flowkit.cli.args import add_json, add_store
from flowkit.cli.output import print_json, size, table, when


def add_parsers(sub: Any) -> None:
    cache = sub.add_parser("cache", help="inspect and clean the store")
    cache.add_argument("action", choices=("ls", "du", "gc", "clear", "reindex"))
    cache.add_argument("--keep", type=int, metavar="N", help="gc: keep only the N latest runs of each flow")
    add_json(cache)
    add_store(cache)
    cache.set_defaults(handler=cmd_cache)


def cmd_cache(args: argparse.Namespace) -> int:
    from flowkit.store import open_store

    store = open_store(args.store, create=args.action in ("gc", "clear", "reindex"))
    data, text = ACTIONS[args.action](store, args.keep)
    if args.json:
        print_json(data)
    else:
        print(text)
    return 0


def _ls(store: Any, keep: int | None) -> tuple[Any, str]:
    from flowkit.store import gc

    entries = gc.entries(store)
    rows = [[e.flow, e.step, e.key[:12], size(e.size), when(e.created)] for e in entries]
    text = table(rows, ["FLOW", "STEP", "KEY", "SIZE", "CREATED"]) if rows else "the cache is empty"
    return [e.to_json() for e in entries], text


def _du(store: Any, keep: int | None) -> tuple[Any, str]:
    from flowkit.store import gc

    sizes = gc.usage(store)
    lines = [f"{name:<8} {size(count)}" for name, count in sizes.items() if name != "objects_count"]
    return sizes, "\n".join(lines) + f"\n{sizes['objects_count']} objects in {store.root}"


def _gc(store: Any, keep: int | None) -> tuple[Any, str]:
    from flowkit.store import gc

    done = gc.collect(store, keep)
    text = (f"removed {done.runs_removed} runs, {done.objects_removed} objects ({size(done.bytes_freed)}), "
            f"{done.keys_removed} cache keys")
    return done.to_json(), text


def _clear(store: Any, keep: int | None) -> tuple[Any, str]:
    from flowkit.store import gc

    gc.clear(store)
    return {"cleared": str(store.root)}, f"cleared {store.root}"


def _reindex(store: Any, keep: int | None) -> tuple[Any, str]:
    from flowkit.store import gc

    count = gc.reindex(store)
    return {"runs": count}, f"re-indexed {count} runs from the records in {store.root}"


ACTIONS = {"ls": _ls, "du": _du, "gc": _gc, "clear": _clear, "reindex": _reindex}
