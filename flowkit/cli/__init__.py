"""The ``flowkit`` command line, the only user of argparse: one module per command group, the
output helpers in ``output``. Imports anything below it, lazily, so ``flowkit --help`` stays fast."""

from __future__ import annotations

import argparse
import sys

from flowkit.cli import cache, compile, datasets, graph, history, run, trace
from flowkit.errors import FlowkitError

_EPILOG = """examples:
  flowkit run examples/hello/flow.py -p name=Ada      run, skipping unchanged steps
  flowkit plan examples/ml/flow.py                     what would run, and why
  flowkit runs                                         recent runs
  flowkit show RUN_ID / flowkit explain RUN_ID STEP    what ran, why it re-ran
  flowkit logs RUN STEP / flowkit output RUN STEP      what a step printed, what it gave
  flowkit diff RUN_A RUN_B / flowkit lineage RUN:STEP  how two runs differ, where an output came from"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowkit", description="Run plain-Python flows with every unchanged step cached; see what ran and why.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version="flowkit 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in (run, compile, graph, history, cache, trace, datasets):
        group.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: FlowkitError -> one or two lines on stderr and its exit code, no traceback."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except FlowkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return 0
