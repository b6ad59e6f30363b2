"""``flowkit runs``, ``show``, ``explain`` and ``graph``: what ran, why, and the flow's shape."""

from __future__ import annotations

import argparse
from typing import Any

from flowkit.cli.args import add_flow, add_json, add_store
from flowkit.cli.output import print_json, seconds, table, when
from flowkit.errors import StoreError, UsageError


def add_parsers(sub: Any) -> None:
    graph = sub.add_parser("graph", help="print the flow's graph")
    add_flow(graph)
    graph.add_argument("--format", choices=("text", "mermaid", "dot"), default="text")
    graph.add_argument("--run", metavar="RUN_ID", help="colour nodes by their status in this run")
    add_store(graph)
    graph.set_defaults(handler=cmd_graph)

    runs = sub.add_parser("runs", help="list recent runs")
    runs.add_argument("--flow", metavar="NAME")
    runs.add_argument("--limit", type=int, default=20)
    add_json(runs)
    add_store(runs)
    runs.set_defaults(handler=cmd_runs)

    show = sub.add_parser("show", help="a run's steps, digests, params and metrics")
    show.add_argument("run_id", metavar="RUN_ID", help="a run id or a unique prefix, or 'last'")
    add_json(show)
    add_store(show)
    show.set_defaults(handler=cmd_show)

    explain = sub.add_parser("explain", help="why a step ran: its key parts against its previous run")
    explain.add_argument("run_id", metavar="RUN_ID")
    explain.add_argument("step", metavar="STEP")
    add_json(explain)
    add_store(explain)
    explain.set_defaults(handler=cmd_explain)


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


def _read_store(spec: str | None) -> Any:
    from flowkit.store import open_store

    return open_store(spec, create=False)


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


def cmd_graph(args: argparse.Namespace) -> int:
    from flowkit.graph.render import render_graph
    from flowkit.loading import load_flow

    flow = load_flow(args.flow)
    status: dict[str, str] = {}
    if args.run:
        store = _read_store(args.store)
        status = {n["node"]: n["status"] for n in store.index.nodes(resolve_run(store, args.run))}
    print(render_graph(flow.graph, args.format, status))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    store = _read_store(args.store)
    runs = _with_status(store, store.index.runs(flow=args.flow, limit=args.limit))
    if args.json:
        print_json([{**r, "duration": _duration(r)} for r in runs])
        return 0
    if not runs:
        print("no runs yet")
        return 0
    rows = [[r["run_id"], r["flow"], r["status"], when(r["started"]), seconds(_duration(r)),
             str(r["ran"]), str(r["cached"]), str(r["failed"])] for r in runs]
    print(table(rows, ["RUN", "FLOW", "STATUS", "STARTED", "TIME", "RAN", "CACHED", "FAILED"]))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = _read_store(args.store)
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

    store = _read_store(args.store)
    report = explain(store, resolve_run(store, args.run_id), args.step)
    if args.json:
        print_json(report)
    else:
        print(report["text"])
    return 0
