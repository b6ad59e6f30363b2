"""``flowkit output``, ``logs`` and ``lineage``: what a step gave, what it printed, where it came from."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from flowkit.cli.args import read_store, store_command
from flowkit.cli.history import resolve_run
from flowkit.cli.output import print_json, size
from flowkit.errors import CorruptObject, StoreError, UsageError

_FOLLOW_POLL = 0.2


def add_parsers(sub: Any) -> None:
    output = store_command(sub, "output", "a step's output: shown short, or written to a file", cmd_output)
    _run_and_step(output)
    output.add_argument("--to", metavar="FILE", type=Path,
                        help="write the value: DataFrame -> .csv/.parquet, array -> .npy, bytes as they are, "
                             "fk.File/fk.Dir copied, else a pickle")

    logs = store_command(sub, "logs", "what a step printed (stdout and stderr)", cmd_logs)
    _run_and_step(logs)
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the step ends")

    lineage = store_command(sub, "lineage", "where an output came from: steps, code, params, data; who used it",
                            cmd_lineage, json=True)
    lineage.add_argument("ref", metavar="RUN:STEP|DIGEST", help="a step of a run (RUN may be 'last'), or an output digest")


def _run_and_step(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN", help="a run id, a unique prefix, or 'last'")
    parser.add_argument("step", metavar="STEP")


def node_record(store: Any, run_ref: str, step: str, *, pending: bool = False) -> tuple[str, Any]:
    """The run id and the step's record in it (``pending``: None for a step of the run that has
    not finished yet); an unknown step lists the run's steps."""
    run_id = resolve_run(store, run_ref)
    record = store.read_node(run_id, step)
    if record is None:
        header = store.records.read_header(run_id)
        names = header.nodes if header else [n["node"] for n in store.index.nodes(run_id)]
        if pending and step in names:
            return run_id, None
        raise UsageError(f"run {run_id} has no step {step!r}", hint=f"its steps: {', '.join(names) or '(none)'}")
    return run_id, record


def cmd_output(args: argparse.Namespace) -> int:
    from flowkit.execution.export import export, short_repr

    store = read_store(args.store)
    run_id, record = node_record(store, args.run_id, args.step)
    what = f"step {args.step!r} of run {run_id}"
    if record.output is None:
        raise UsageError(f"{what} has no output: it {record.status}" + (f" ({record.error})" if record.error else ""),
                         hint=f"see why with: flowkit show {run_id}")
    value = _load(store, record.output, what)
    if args.to is None:
        print(f"{what}: {type(value).__module__}.{type(value).__qualname__}, {size(record.output.size)}, "
              f"digest {record.output.digest[:12]}")
        print(short_repr(value))
        return 0
    fmt = export(value, args.to, what=what)
    print(f"wrote {args.to} ({fmt})")
    return 0


def _load(store: Any, output: Any, what: str) -> Any:
    """The value, with the working folder importable as for ``python -m`` (a pickle names the
    user's modules); a missing module or a damaged object is said plainly."""
    added = "" not in sys.path
    if added:
        sys.path.insert(0, "")
    try:
        return store.load(output)
    except CorruptObject as exc:
        raise StoreError(f"{what}: its output is gone from the store ({exc})",
                         hint="run the flow again to make it; `flowkit cache verify` checks the store") from None
    except ModuleNotFoundError as exc:
        raise UsageError(f"{what}: the value needs module {exc.name!r}, which cannot be imported here",
                         hint="run from the folder the flow runs from, or add it to PYTHONPATH") from None
    finally:
        if added:
            sys.path.remove("")


def cmd_logs(args: argparse.Namespace) -> int:
    store = read_store(args.store)
    run_id, record = node_record(store, args.run_id, args.step, pending=True)
    source = run_id
    if record is not None and record.status == "cached" and record.key:
        made = store.records.read_key(record.key)
        if made is not None and made.run_id and made.run_id != run_id:
            source = made.run_id
            print(f"step {args.step!r} was cached in run {run_id}: this is the log of run {source}, which made it",
                  file=sys.stderr)
    log = store.logs.read(source, args.step)
    if log is None and not args.follow:
        print(f"step {args.step!r} of run {source} printed nothing", file=sys.stderr)
        return 0
    text = log.text if log else ""
    sys.stdout.write(text)
    if args.follow:
        _follow(store, source, args.step, len(text.encode()) if log else 0, complete=bool(log and log.complete))
    elif log is not None and not log.complete:
        print(f"(the log is incomplete: step {args.step!r} is still running or was stopped)", file=sys.stderr)
    return 0


def _follow(store: Any, run_id: str, step: str, offset: int, *, complete: bool) -> None:
    """Print what the step appends until its log is final or its run has ended."""
    from flowkit.store.runs import shown_status

    while not complete:
        time.sleep(_FOLLOW_POLL)
        log = store.logs.read(run_id, step, offset)
        if log is not None and log.text:
            sys.stdout.write(log.text)
            sys.stdout.flush()
            offset += len(log.text.encode())
        complete = log is not None and log.complete
        if not complete and shown_status(store.records, run_id, "running") != "running":
            return


def cmd_lineage(args: argparse.Namespace) -> int:
    from flowkit.execution.lineage import find, lineage

    store = read_store(args.store)
    report = lineage(store, find(store, args.ref, resolve_run))
    if args.json:
        print_json(report)
    else:
        print(report["text"])
    return 0
