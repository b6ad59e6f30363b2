"""``flowkit runs``, ``show``, ``explain`` and ``diff``: what ran, why, and how two runs differ."""

from __future__ import annotations

import argparse
from typing import Any

from flowkit.cli.args import read_store, store_command
from flowkit.cli.output import print_json, seconds, table, when
from flowkit.errors import StoreError, UsageError

RUN_STATUSES = ("succeeded", "failed", "running", "interrupted", "cancelled")  # as `runs` shows them


def add_parsers(sub: Any) -> None:
    runs = store_command(sub, "runs", "list recent runs", cmd_runs, json=True)
    runs.add_argument("--flow", metavar="NAME")
    runs.add_argument("--status", choices=RUN_STATUSES, help="only runs with this status (as listed)")
    runs.add_argument("--limit", type=int, default=20, help="at most N runs (those that match), newest first")

    show = store_command(sub, "show", "a run's steps, digests, params and metrics", cmd_show, json=True)
    show.add_argument("run_id", metavar="RUN_ID", help="a run id or a unique prefix, or 'last'")

    explain = store_command(sub, "explain", "why a step ran: its key parts against its previous run", cmd_explain, json=True)
    explain.add_argument("run_id", metavar="RUN_ID")
    explain.add_argument("step", metavar="STEP")

    diff = store_command(sub, "diff", "how two runs differ: params, metrics, steps, keys and outputs", cmd_diff, json=True)
    diff.add_argument("run_a", metavar="RUN_A", help="a run id or a unique prefix, or 'last'")
    diff.add_argument("run_b", metavar="RUN_B")


def resolve_run(store: Any, ref: str) -> str:
    """A run id from an id, a unique prefix or ``last``."""
    if ref == "last":
        runs = store.index.runs(limit=1)
        if not runs:
            raise StoreError(f"store {store.root} has no runs yet", hint="run a flow first: flowkit run FLOW")
        return runs[0]["run_id"]
    matches = store.index.run_ids_like(ref)
    if ref in matches:
        return ref
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(f"no run {ref!r} in store {store.root}", hint="list runs with: flowkit runs")
    raise UsageError(f"run id prefix {ref!r} is ambiguous: {', '.join(matches[:5])}", hint="give more characters")


def _with_status(store: Any, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Index rows with the status the records give a run without an end: ``interrupted`` once its
    process is gone (the index cannot know that)."""
    from flowkit.store.runs import shown_status

    for run in runs:
        run["status"] = shown_status(store.records, run["run_id"], run["status"])
    return runs


def _duration(run: dict[str, Any]) -> float | None:
    end = run["ended"] or run.get("last_end")
    return None if not end or not run["started"] else end - run["started"]


def recent_runs(store: Any, *, flow: str | None, status: str | None, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` latest runs of ``flow`` (any flow: None) whose shown status is ``status`` (any:
    None). The status is filtered after it is derived (``interrupted`` is known from the records
    only), reading more rows of the index until ``limit`` match or none are left."""
    if limit < 1:
        raise UsageError(f"runs: --limit must be 1 or more, got {limit}", hint="--limit N lists the N latest runs")
    batch = limit
    while True:
        rows = _with_status(store, store.index.runs(flow=flow, limit=batch))
        found = [row for row in rows if status is None or row["status"] == status]
        if len(found) >= limit or len(rows) < batch:
            return found[:limit]
        batch *= 4


def cmd_runs(args: argparse.Namespace) -> int:
    store = read_store(args.store)
    runs = recent_runs(store, flow=args.flow, status=args.status, limit=args.limit)
    if args.json:
        print_json([{**r, "duration": _duration(r)} for r in runs])
        return 0
    if not runs:
        print("no runs yet" if args.flow is None and args.status is None else "no runs match")
        return 0
    rows = [[r["run_id"], r["flow"], r["status"], when(r["started"]), seconds(_duration(r)),
             str(r["ran"]), str(r["cached"]), str(r["failed"])] for r in runs]
    print(table(rows, ["RUN", "FLOW", "STATUS", "STARTED", "TIME", "RAN", "CACHED", "FAILED"]))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = read_store(args.store)
    run_id = resolve_run(store, args.run_id)
    run = _with_status(store, [store.index.run(run_id)])[0]
    nodes = store.index.nodes(run_id)
    metrics = store.index.metrics(run_id)
    logged = store.index.logged_params(run_id)
    if args.json:
        print_json({**run, "duration": _duration(run), "nodes": nodes, "metrics": metrics, "logged_params": logged})
        return 0
    print(f"run {run_id}  flow {run['flow']}  {run['status']}  started {when(run['started'])}  "
          f"took {seconds(_duration(run))}  backend {run['backend']}")
    print("params: " + (", ".join(f"{k}={v!r}" for k, v in sorted(run["params"].items())) or "(none)"))
    rows = [[n["node"], n["status"], seconds(n["duration"]), (n["key"] or "-")[:12],
             (n["output"]["digest"][:12] if n["output"] else "-"), n["error"] or ""] for n in nodes]
    print()
    print(table(rows, ["STEP", "STATUS", "TIME", "KEY", "OUTPUT", "ERROR"]))
    for node in nodes:
        if node["status"] == "failed":
            record = store.read_node(run_id, node["node"])
            print(f"\nstep {node['node']!r} failed: {node['error']}")
            if record is not None and record.traceback:
                print(record.traceback.rstrip("\n"))
    if logged:
        print("\nlogged params:")
        print(table([[p["node"], p["name"], repr(p["value"])] for p in logged], ["STEP", "NAME", "VALUE"]))
    if metrics:
        print("\nmetrics:")
        print(table([[m["node"], m["name"], "" if m["step"] is None else str(m["step"]), f"{m['value']:.6g}"
                      if isinstance(m["value"], float) else str(m["value"])] for m in metrics],
                    ["STEP", "METRIC", "AT", "VALUE"]))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from flowkit.execution.explain import explain

    store = read_store(args.store)
    report = explain(store, resolve_run(store, args.run_id), args.step)
    if args.json:
        print_json(report)
    else:
        print(report["text"])
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from flowkit.execution.diff import diff_runs

    store = read_store(args.store)
    report = diff_runs(store, resolve_run(store, args.run_a), resolve_run(store, args.run_b))
    if args.json:
        print_json(report)
    else:
        print(report["text"])
    return 0
