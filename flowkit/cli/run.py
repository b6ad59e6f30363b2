"""``flowkit run``, ``plan`` and ``run-step``: running flows and single steps."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flowkit.cli.args import add_flow, add_json, add_params, add_store, flow_and_params
from flowkit.cli.output import print_json, seconds, table
from flowkit.errors import CodeMismatchError, UsageError


def add_parsers(sub: Any) -> None:
    run = sub.add_parser("run", help="run a flow; unchanged steps are cache hits")
    add_flow(run)
    add_params(run)
    run.add_argument("--backend", default="local", help="local (default), process or docker")
    run.add_argument("--workers", type=int, help="parallel steps (process/docker; default: cores)")
    run.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    _add_force(run, "re-run every step", "re-run this step; downstream re-runs only if its output changes")
    add_json(run, "print the result as JSON")
    add_store(run)
    run.set_defaults(handler=cmd_run)

    plan = sub.add_parser("plan", help="what a run would do, and why (runs nothing)")
    add_flow(plan)
    add_params(plan)
    _add_force(plan, "plan as if every step were forced", "plan as if this step were forced")
    plan.add_argument("--since", metavar="REV",
                      help="from code alone (no store): the steps a change since git revision REV re-runs")
    plan.add_argument("--write-key-parts", metavar="FILE", help=argparse.SUPPRESS)  # --since's child process
    add_json(plan, "print the plan as JSON")
    add_store(plan)
    plan.set_defaults(handler=cmd_plan)

    step = sub.add_parser("run-step", help="run one step of a run against a store (used by backends and compiled files)")
    step.add_argument("--flow", required=True, metavar="FLOW")
    step.add_argument("--step", required=True, metavar="NAME")
    step.add_argument("--run-id", required=True, metavar="ID")
    step.add_argument("--store", required=True, metavar="URI")
    add_params(step)
    step.add_argument("--no-retries", action="store_true", help="the orchestrator retries; run the step once")
    step.add_argument("--force", action="store_true", help="run the step even if its key is cached")
    step.add_argument("--expect-code", metavar="DIGEST", help="refuse to run if the step's code digest differs")
    step.add_argument("--bundle", metavar="DIGEST", help="import the flow from this code bundle in the store")
    fan = step.add_mutually_exclusive_group()  # a .map step: list its items, run one, or (neither) gather them
    fan.add_argument("--items", action="store_true",
                     help="on a .map step: print its item indices as a JSON list (last line), run nothing")
    fan.add_argument("--item", type=int, metavar="N",
                     help="on a .map step: run its item N (with neither flag: gather the items)")
    step.add_argument("--items-to", metavar="FILE", help="with --items: also write the JSON list to FILE")
    step.set_defaults(handler=cmd_run_step)


def _add_force(parser: argparse.ArgumentParser, every: str, one: str) -> None:
    parser.add_argument("--force", action="store_true", help=every)
    parser.add_argument("--force-step", dest="force_steps", action="append", default=[], metavar="NAME", help=one)


def cmd_plan(args: argparse.Namespace) -> int:
    if getattr(args, "write_key_parts", None):
        return _write_key_parts(args.flow, args.params, args.write_key_parts)
    if getattr(args, "since", None) is not None:  # `run --dry-run` has no --since
        return _plan_since(args)
    flow, params = flow_and_params(args.flow, args.params)
    plan = flow.plan(force=args.force, force_steps=args.force_steps, store=args.store, **params)
    if args.json:
        print_json(plan.to_json())
        return 0
    print(table([[r.node, r.verdict, r.reason] for r in plan.rows], ["STEP", "VERDICT", "REASON"]))
    counts = plan.counts()
    print(f"\n{counts['cached']} cached, {counts['run']} to run, {counts['after upstream']} after upstream")
    return 0


def _plan_since(args: argparse.Namespace) -> int:
    """``plan --since REV``: what a change since REV re-runs, from code alone."""
    from pathlib import Path

    from flowkit.execution.since import FlowLocation, since_report
    from flowkit.loading import is_file_ref, split_ref

    if args.force or args.force_steps or args.store:
        raise UsageError("plan --since compares code only: it reads no store and forces no step "
                         "(drop --store, --force and --force-step, or drop --since)")
    flow, params = flow_and_params(args.flow, args.params)
    target, attr = split_ref(args.flow)
    where = (FlowLocation(Path(target).expanduser().resolve(), None, attr) if is_file_ref(target)
             else FlowLocation(None, target, attr))
    report = since_report(flow, flow.resolve_params(params), where, args.params or [], args.since)
    if args.json:
        print_json(report.to_json())
        return 0
    if report.note:
        print(report.note + "\n")
    print(table([[r.node, r.verdict, r.reason] for r in report.rows], ["STEP", "VERDICT", "REASON"]))
    print("\n" + report.summary())
    return 0


def _write_key_parts(ref: str, raw_params: list[str] | None, out: str) -> int:
    """The child side of ``--since``, run in the tree at REV: the flow's key parts as JSON in
    ``out``, or ``{"missing": why}`` when the flow is not in this tree (then every step is new).
    ``-p`` names this version of the flow does not have are left out."""
    import json
    from pathlib import Path

    from flowkit.authoring.params import parse_assignments
    from flowkit.errors import LoadError
    from flowkit.execution.since import snapshot
    from flowkit.flow import Flow
    from flowkit.loading import flows_in, is_file_ref, load_flow, load_module, split_ref

    target, attr = split_ref(ref)
    name = Path(target).name if is_file_ref(target) else target
    try:
        module = load_module(target)
    except LoadError:
        if Path(target).is_file() if is_file_ref(target) else _module_found(target):
            raise  # it is there and fails to import: the user must see why
        module = None
    missing = (f"module {name} is not there" if module is None
               else f"{name} has no flow {attr!r}" if attr and not isinstance(getattr(module, attr, None), Flow)
               else f"{name} defines no flow" if not attr and not flows_in(module) else None)
    if missing is not None:
        found: dict[str, Any] = {"missing": missing}
    else:
        flow = load_flow(ref)
        names = {spec.name for spec in flow.params}
        given = [item for item in raw_params or () if item.partition("=")[0] in names]
        found = snapshot(flow, flow.resolve_params(parse_assignments(flow.name, given, flow.params)))
    Path(out).write_text(json.dumps(found), encoding="utf-8")
    return 0


def _module_found(name: str) -> bool:
    """As ``loading.load_module`` decides it: a parent package that raises counts as found."""
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False
    except Exception:
        return True


def cmd_run(args: argparse.Namespace) -> int:
    from flowkit.authoring.params import check_workers

    check_workers(args.workers, what="--workers")  # before the flow loads: -1 would hang, 0 hide a typo
    if args.dry_run:
        return cmd_plan(args)
    from flowkit.execution.run import progress_lines

    flow, params = flow_and_params(args.flow, args.params)
    token = progress_lines.set(not args.json)  # a line per finished step where stderr is a log, not a terminal
    try:
        run = flow.run(backend=args.backend, workers=args.workers, force=args.force, force_steps=args.force_steps,
                       store=args.store, **params)
    finally:
        progress_lines.reset(token)
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
        print_failure(failed, gap="\n")
    return 0 if run.status == "succeeded" else 1  # a step failed: SPEC §11


def print_failure(outcome: Any, gap: str = "") -> None:
    """A failed step's error and traceback, on stderr."""
    print(f"{gap}step {outcome.node!r} failed: {outcome.error}", file=sys.stderr)
    if outcome.traceback:
        print(outcome.traceback.rstrip(), file=sys.stderr)


def cmd_run_step(args: argparse.Namespace) -> int:
    if args.items_to and not args.items:
        raise UsageError("run-step: --items-to writes the list that --items makes", hint="add --items")
    if args.items:
        return _list_items(args)
    flow, store, params = _step_inputs(args)
    from flowkit.execution.entrypoint import run_step as run_node

    outcome = run_node(flow, args.step, args.run_id, store, params, item=args.item, retries=not args.no_retries,
                       force=args.force)
    if outcome.status == "failed":
        print_failure(outcome)
        return 1
    digest = outcome.output.digest[:12] if outcome.output else "-"
    print(f"step {outcome.node!r} {outcome.status} in {outcome.duration:.3f}s, output {digest}")
    return 0


def _list_items(args: argparse.Namespace) -> int:
    """``--items``: the map's item indices as the last line of stdout (and in ``--items-to``)."""
    import json

    from flowkit.execution.entrypoint import map_items

    if args.force:
        raise UsageError("run-step: --items runs nothing, so there is nothing to --force",
                         hint="drop --force, or pass it to each --item")
    flow, store, params = _step_inputs(args)
    listed = map_items(flow, args.step, args.run_id, store, params)
    if listed.failure is not None:
        print_failure(listed.failure)
        return 1
    text = json.dumps(listed.indices)
    if args.items_to:
        _write_atomically(args.items_to, text + "\n")
    print(text)
    return 0


def _write_atomically(path: str, text: str) -> None:
    """Write ``path`` whole or not at all (an orchestrator may read it as the process ends)."""
    import os
    import tempfile
    from pathlib import Path

    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temp, target)
    except OSError as exc:
        raise UsageError(f"run-step: cannot write --items-to {path}: {exc.strerror or exc}",
                         hint="name a file in a folder this process can write") from None


def _step_inputs(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """Open the store, load the flow (from a bundle in it, if given), check the code is the
    compiled code; the flow, the store and the resolved parameters."""
    from flowkit.authoring.params import parse_assignments
    from flowkit.keys.code import code_fingerprint
    from flowkit.loading import load_flow
    from flowkit.store import open_store

    run_id, flow_ref, name = args.run_id, args.flow, args.step
    if not run_id or "/" in run_id or run_id in (".", "..") or "\0" in run_id:
        raise UsageError(f"run-step: --run-id {run_id!r} cannot name a run folder",
                         hint="use letters, digits and -_.:+ (an orchestrator's run id works)")
    store = open_store(args.store)
    if args.bundle:
        from flowkit.store.bundle import activate

        flow_ref = activate(store, args.bundle, flow_ref)
    flow = load_flow(flow_ref)
    node = flow.graph.node(name)  # an unknown name lists the valid ones
    if args.expect_code is not None and code_fingerprint(node.step.fn).digest != args.expect_code:
        raise CodeMismatchError(
            f"flow {flow.name!r}, step {name!r}: the code here differs from the code that was compiled",
            hint="deploy the compiled version of the flow, or compile again from this code",
        )
    return flow, store, flow.resolve_params(parse_assignments(flow.name, args.params, flow.params))
