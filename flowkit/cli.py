"""The ``flowkit`` command line. argparse keeps ``flowkit --help`` fast (no heavy imports)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

from .errors import FlowkitError

_EPILOG = """examples:
  flowkit run examples/hello/flow.py -p name=Ada      run, skipping unchanged steps
  flowkit plan examples/ml/flow.py                     what would run, and why
  flowkit runs                                         recent runs
  flowkit show RUN_ID / flowkit explain RUN_ID STEP    what ran, why it re-ran"""


def _add_flow(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("flow", metavar="FLOW", help="path/to/file.py[:attr] or package.module[:attr]")


def _add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="DIR", help="the store (default: $FLOWKIT_STORE or ./.flowkit)")


def _add_params(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--param", dest="params", action="append", metavar="NAME=VALUE",
                        help="a flow parameter: text for a str parameter, else JSON (a bare word counts as text)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowkit", description="Run plain-Python flows with every unchanged step cached; see what ran and why.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version="flowkit 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run a flow; unchanged steps are cache hits")
    _add_flow(run)
    _add_params(run)
    run.add_argument("--backend", default="local", help="local (default), process or docker")
    run.add_argument("--workers", type=int, help="parallel steps (process/docker; default: cores)")
    run.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    run.add_argument("--force", action="store_true", help="re-run every step")
    run.add_argument("--force-step", dest="force_steps", action="append", default=[], metavar="NAME",
                     help="re-run this step; downstream re-runs only if its output changes")
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_store(run)

    plan = sub.add_parser("plan", help="what a run would do, and why (runs nothing)")
    _add_flow(plan)
    _add_params(plan)
    plan.add_argument("--force", action="store_true", help="plan as if every step were forced")
    plan.add_argument("--force-step", dest="force_steps", action="append", default=[], metavar="NAME",
                      help="plan as if this step were forced")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    _add_store(plan)

    comp = sub.add_parser("compile", help="render the flow for airflow, argo or shell")
    _add_flow(comp)
    comp.add_argument("--target", required=True, choices=("airflow", "argo", "shell"),
                      help="an Airflow DAG file, an Argo Workflows YAML, or a bash script")
    comp.add_argument("-o", "--output", default=".", metavar="DIR", help="folder for the generated files (default: .)")
    comp.add_argument("--store", metavar="URI", help="the store the steps use (default: this machine's store, absolute)")
    comp.add_argument("--image", metavar="IMAGE", help="default image of steps without one (argo)")
    comp.add_argument("--kind", default="workflow", choices=("workflow", "workflow-template", "cron-workflow"),
                      help="argo: the kind of document")
    comp.add_argument("--volume-claim", metavar="NAME", help="argo: PersistentVolumeClaim mounted at the store path")
    comp.add_argument("--jobs", type=int, default=4, metavar="N", help="shell: default parallel steps")
    comp.add_argument("--python", default="python3", metavar="PATH", help="interpreter in generated commands")
    comp.add_argument("--bundle", action="store_true",
                      help="ship the project's Python files in the store; steps run exactly this code")

    graph = sub.add_parser("graph", help="print the flow's graph")
    _add_flow(graph)
    graph.add_argument("--format", choices=("text", "mermaid", "dot"), default="text")
    graph.add_argument("--run", metavar="RUN_ID", help="colour nodes by their status in this run")
    _add_store(graph)

    runs = sub.add_parser("runs", help="list recent runs")
    runs.add_argument("--flow", metavar="NAME")
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--json", action="store_true", help="print JSON, for scripts")
    _add_store(runs)

    show = sub.add_parser("show", help="a run's steps, digests, params and metrics")
    show.add_argument("run_id", metavar="RUN_ID", help="a run id or a unique prefix, or 'last'")
    show.add_argument("--json", action="store_true", help="print JSON, for scripts")
    _add_store(show)

    explain = sub.add_parser("explain", help="why a step ran: its key parts against its previous run")
    explain.add_argument("run_id", metavar="RUN_ID")
    explain.add_argument("step", metavar="STEP")
    explain.add_argument("--json", action="store_true", help="print JSON, for scripts")
    _add_store(explain)

    cache = sub.add_parser("cache", help="inspect and clean the store")
    cache.add_argument("action", choices=("ls", "du", "gc", "clear", "reindex"))
    cache.add_argument("--keep", type=int, metavar="N", help="gc: keep only the N latest runs of each flow")
    cache.add_argument("--json", action="store_true", help="print JSON, for scripts")
    _add_store(cache)

    step = sub.add_parser("run-step", help="run one step of a run against a store (used by backends and compiled files)")
    step.add_argument("--flow", required=True, metavar="FLOW")
    step.add_argument("--step", required=True, metavar="NAME")
    step.add_argument("--run-id", required=True, metavar="ID")
    step.add_argument("--store", required=True, metavar="URI")
    _add_params(step)
    step.add_argument("--no-retries", action="store_true", help="the orchestrator retries; run the step once")
    step.add_argument("--force", action="store_true", help="run the step even if its key is cached")
    step.add_argument("--expect-code", metavar="DIGEST", help="refuse to run if the step's code digest differs")
    step.add_argument("--bundle", metavar="DIGEST", help="import the flow from this code bundle in the store")
    return parser


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    from . import commands

    return getattr(commands, "cmd_" + name.replace("-", "_"))


def main(argv: list[str] | None = None) -> int:
    """Entry point: FlowkitError -> one or two lines on stderr and its exit code, no traceback."""
    args = build_parser().parse_args(argv)
    try:
        return _command(args.command)(args)
    except FlowkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return 0


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=repr))
