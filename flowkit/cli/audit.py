"""``flowkit cache audit FLOW [-p ...] [--sample N]``: re-run cached steps, report those whose output
is not what the cache holds (``execution.audit`` does it)."""

from __future__ import annotations

import argparse

from flowkit.cli.args import flow_and_params
from flowkit.cli.output import print_json, table
from flowkit.errors import UsageError


def cmd_audit(args: argparse.Namespace) -> int:
    """Exit 1 when a step's re-run disagrees with its cache entry, like ``cache verify`` on damage."""
    from flowkit.execution.audit import audit
    from flowkit.store import open_store

    if not args.flow:
        raise UsageError("cache audit needs FLOW: the steps' code re-runs them",
                         hint="flowkit cache audit path/to/flow.py [-p NAME=VALUE ...] [--sample N]")
    if args.sample is not None and args.sample < 1:
        raise UsageError(f"cache audit: --sample must be 1 or more, got {args.sample}",
                         hint="leave --sample out to audit every cached step")
    flow, given = flow_and_params(args.flow, args.params)
    report = audit(flow, flow.resolve_params(given), open_store(args.store, create=False), sample=args.sample,
                   seed=args.seed)
    if args.json:
        print_json(report.to_json())
    elif not report.findings:
        print(f"flow {report.flow!r}: no cached step to audit (run the flow first, with the same -p values)")
    else:
        print(table([[f.step, f.verdict, f.detail] for f in report.findings], ["STEP", "AUDIT", "WHAT DIFFERED"]))
        print(f"\n{len(report.findings)} of {report.cached} cached steps re-run twice, "
              f"{len(report.suspicious)} not what the cache holds")
    return 1 if report.suspicious else 0
