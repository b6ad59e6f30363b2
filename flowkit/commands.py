"""What each CLI command does; ``cli.py`` only parses arguments."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from .cli import print_json
from .errors import FlowkitError, StoreError
from .store import Store, open_store


def table(rows: list[list[str]], header: list[str]) -> str:
    """Left-aligned columns, two spaces apart."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.1f}s"


def when(timestamp: float | None) -> str:
    return "-" if not timestamp else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _flow_and_params(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    from .loading import load_flow
    from .params import parse_assignments

    flow = load_flow(args.flow)
    return flow, parse_assignments(flow.name, args.params, flow.params)


# -- run and plan ----------------------------------------------------------------------------

def cmd_plan(args: argparse.Namespace) -> int:
    flow, params = _flow_and_params(args)
    plan = flow.plan(force=args.force, force_steps=args.force_steps, store=args.store, **params)
    if args.json:
        print_json(plan.to_json())
        return 0
    print(table([[r.node, r.verdict, r.reason] for r in plan.rows], ["STEP", "VERDICT", "REASON"]))
    counts = plan.counts()
    print(f"\n{counts['cached']} cached, {counts['run']} to run, {counts['after upstream']} after upstream")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    if args.dry_run:
        return cmd_plan(args)
    flow, params = _flow_and_params(args)
    run = flow.run(backend=args.backend, workers=args.workers, force=args.force, force_steps=args.force_steps,
                   store=args.store, **params)
    if args.json:
        print_json({"run_id": run.id, "status": run.status,
                    "steps": {n: {"status": o.status, "duration": o.duration, "error": o.error}
                              for n, o in run.steps.items()}})
    else:
        rows = [[n, o.status, seconds(o.duration), (o.output.digest[:12] if o.output else "-")]
                for n, o in run.steps.items()]
        print(table(rows, ["STEP", "STATUS", "TIME", "OUTPUT"]))
        counts = {s: sum(o.status == s for o in run.steps.values()) for s in ("ran", "cached", "failed", "skipped")}
        print(f"\nrun {run.id} {run.status}: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    for failed in run.failed_steps:
        print(f"\nstep {failed.node!r} failed: {failed.error}", file=sys.stderr)
        if failed.traceback:
            print(failed.traceback.rstrip(), file=sys.stderr)
    return 0 if run.status == "succeeded" else 1  # a step failed: SPEC §11


def cmd_run_step(args: argparse.Namespace) -> int:
    from .entrypoint import main_args

    return main_args(args)


def cmd_compile(args: argparse.Namespace) -> int:
    from .compiling import compile_flow, write_artifacts

    artifacts = compile_flow(args)
    for path in write_artifacts(artifacts, args.output):
        print(f"wrote {path}")
    return 0


# -- graph -----------------------------------------------------------------------------------

def cmd_graph(args: argparse.Namespace) -> int:
    from .loading import load_flow

    flow = load_flow(args.flow)
    graph = flow.graph
    status: dict[str, str] = {}
    if args.run:
        store = open_store(args.store, create=False)
        status = {n["node"]: n["status"] for n in store.index.nodes(resolve_run(store, args.run))}
    from .render import render_graph

    print(render_graph(graph, args.format, status))
    return 0


# -- history ---------------------------------------------------------------------------------

def resolve_run(store: Store, ref: str) -> str:
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
        raise FlowkitError(f"no run {ref!r} in store {store.root}", hint="list runs with: flowkit runs")
    raise FlowkitError(f"run id prefix {ref!r} is ambiguous: {', '.join(matches[:5])}", hint="give more characters")


def _duration(run: dict[str, Any]) -> float | None:
    end = run["ended"] or run.get("last_end")
    return None if not end or not run["started"] else end - run["started"]


def cmd_runs(args: argparse.Namespace) -> int:
    store = open_store(args.store, create=False)
    runs = store.index.runs(flow=args.flow, limit=args.limit)
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
    store = open_store(args.store, create=False)
    run_id = resolve_run(store, args.run_id)
    run = store.index.run(run_id)
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
    from .explain import explain

    store = open_store(args.store, create=False)
    report = explain(store, resolve_run(store, args.run_id), args.step)
    if args.json:
        print_json(report)
    else:
        print(report["text"])
    return 0


# -- cache -----------------------------------------------------------------------------------

def cmd_cache(args: argparse.Namespace) -> int:
    from . import housekeeping

    store = open_store(args.store, create=args.action in ("gc", "clear", "reindex"))
    result = getattr(housekeeping, args.action)(store, args)
    if args.json:
        print_json(result["data"])
    else:
        print(result["text"])
    return 0
