"""``flowkit cache ls|du|gc|verify|clear|reindex``: look at the store, check it and clean it
(``store.gc`` and ``store.verify`` do it)."""

from __future__ import annotations

import argparse
from typing import Any

from flowkit.cli.args import add_json, add_params, add_store
from flowkit.cli.output import print_json, size, table, when
from flowkit.errors import UsageError

_KEEP_HELP = ("gc: keep only the N latest runs of each flow (N >= 0; 0 keeps none that has ended). "
              "Runs still going are always kept, with every cache entry of their flow; an interrupted "
              "run counts as ended")
_GRACE_HELP = ("gc: keep files no record names yet for this long (default: an hour), since a writer may be "
               "between writing an object and its record; 0 reclaims them at once (only with no run going)")


def add_parsers(sub: Any) -> None:
    cache = sub.add_parser("cache", help="inspect, check and clean the store")
    cache.add_argument("action", choices=("ls", "du", "gc", "verify", "audit", "clear", "reindex"),
                       help="verify: check every object against its digest and every record, remove what "
                            "is corrupt (exit 1 if anything was); audit FLOW: re-run cached steps in a scratch "
                            "store, report those whose output differs (exit 1 if any)")
    cache.add_argument("flow", nargs="?", metavar="FLOW", help="audit: the flow whose cached steps to re-run")
    add_params(cache)
    cache.add_argument("--sample", type=int, metavar="N", help="audit: re-run N cached steps (default: all)")
    cache.add_argument("--seed", type=int, default=0, help="audit: which N (default: 0)")
    cache.add_argument("--keep", "--keep-last", dest="keep", type=int, metavar="N", help=_KEEP_HELP)
    cache.add_argument("--grace", type=float, metavar="SECONDS", help=_GRACE_HELP)
    add_json(cache)
    add_store(cache)
    cache.set_defaults(handler=cmd_cache)


def cmd_cache(args: argparse.Namespace) -> int:
    from flowkit.store import open_store
    from flowkit.store.gc import check_keep

    check_keep(args.keep)
    if args.action == "audit":
        from flowkit.cli.audit import cmd_audit

        return cmd_audit(args)
    if args.flow or args.params:
        raise UsageError(f"cache {args.action} takes no FLOW or -p", hint="only `cache audit FLOW` does")
    store = open_store(args.store, create=args.action in ("gc", "verify", "clear", "reindex"))
    code, data, text = ACTIONS[args.action](store, args)
    if args.json:
        print_json(data)
    else:
        print(text)
    return code


def _ls(store: Any, args: argparse.Namespace) -> tuple[int, Any, str]:
    from flowkit.store import gc

    entries = gc.entries(store)
    rows = [[e.flow, e.step, e.key[:12], size(e.size), when(e.created)] for e in entries]
    text = table(rows, ["FLOW", "STEP", "KEY", "SIZE", "CREATED"]) if rows else "the cache is empty"
    return 0, [e.to_json() for e in entries], text


def _du(store: Any, args: argparse.Namespace) -> tuple[int, Any, str]:
    from flowkit.store import gc

    sizes = gc.usage(store)
    shown = {k: v for k, v in sizes.items() if not k.endswith("_count") and (k != "temporary" or v)}
    lines = [f"{name:<10} {size(count)}" for name, count in shown.items()]
    text = "\n".join(lines) + f"\n{sizes['objects_count']} objects in {store.root}"
    if sizes["temporary_count"]:
        text += (f"\n{sizes['temporary_count']} temporary files of writers still going or killed "
                 "(`flowkit cache gc` removes those over an hour old)")
    return 0, sizes, text


def _gc(store: Any, args: argparse.Namespace) -> tuple[int, Any, str]:
    from flowkit.store import gc

    done = gc.collect(store, args.keep, **({} if args.grace is None else {"grace": args.grace}))
    text = (f"removed {done.runs_removed} runs, {done.objects_removed} objects ({size(done.bytes_freed)}), "
            f"{done.keys_removed} cache keys")
    if done.temporary_removed:
        text += f", {done.temporary_removed} temporary files of killed writers"
    return 0, done.to_json(), text


def _verify(store: Any, args: argparse.Namespace) -> tuple[int, Any, str]:
    from flowkit.store.verify import verify

    found = verify(store)
    lines = [f"{p.what}: {p.path}: {p.detail} ({p.action})" for p in found.problems]
    summary = f"checked {found.objects} objects and {found.records} records in {store.root}: "
    count = len(found.problems)
    lines.append(summary + ("all sound" if found.ok else f"{count} problem{'s' * (count != 1)}, fixed as shown; "
                            "the steps they concern run again on the next run"))
    return (0 if found.ok else 1), found.to_json(), "\n".join(lines)


def _clear(store: Any, args: argparse.Namespace) -> tuple[int, Any, str]:
    from flowkit.store import gc

    gc.clear(store)
    return 0, {"cleared": str(store.root)}, f"cleared {store.root}"


def _reindex(store: Any, args: argparse.Namespace) -> tuple[int, Any, str]:
    from flowkit.store import gc

    count = gc.reindex(store)
    return 0, {"runs": count}, f"re-indexed {count} runs from the records in {store.root}"


ACTIONS = {"ls": _ls, "du": _du, "gc": _gc, "verify": _verify, "clear": _clear, "reindex": _reindex}
