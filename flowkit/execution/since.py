"""``plan --since REV``: which steps a change since a git revision re-runs, from code alone.

No store and no data: every node's key parts, with its upstream outputs left out (an input is
named by the node it comes from), are compared with the same node's parts at REV, and the reason
is worded by ``keys.parts.differences``, as ``plan`` words it. The tree at REV is materialised in
a temporary folder (``git archive``: the repository itself is not touched) and its flow imported
in a child process, so two versions of the user's modules never meet in one interpreter; the
child runs this flowkit, so both sides hash with one key scheme. A step downstream of one that
re-runs is ``after upstream``: it re-runs only if that output changes (early cutoff).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from flowkit.errors import LoadError, UsageError
from flowkit.graph.nodes import FlowSpec, Node
from flowkit.execution.verdict import node_parts
from flowkit.keys.parts import KeyParts, differences

VERDICTS = ("re-runs", "new step", "after upstream", "unchanged", "removed")
_FLOWKIT_HOME = str(Path(__file__).resolve().parents[2])  # the folder this flowkit imports from

# The child: import this flowkit first (whatever the tree holds), then put the tree first on
# sys.path and run `python -m flowkit plan FLOW --write-key-parts FILE`.
_CHILD = ("import json, runpy, sys\n"
          "paths = json.loads(sys.argv.pop(1))\n"
          "sys.path[:] = paths['here']\n"
          "import flowkit\n"
          "sys.path[:] = paths['tree']\n"
          "runpy.run_module('flowkit', run_name='__main__', alter_sys=True)\n")


class _Outputs(dict[str, str]):
    """Upstream outputs by the name of the node that makes them: no data is read."""

    def __missing__(self, node: str) -> str:
        return f"output of {node}"


def snapshot(flow: FlowSpec, params: dict[str, Any]) -> dict[str, Any]:
    """Each node's key parts but its inputs' digests, as JSON: the same for this tree and for the
    tree at REV, which computes it in its own process."""
    graph = flow.graph
    nodes = {name: {"upstream": graph.upstream(name), **_node_parts(graph.nodes[name], params, flow.image)}
             for name in graph.order()}
    return {"flow": flow.name, "order": graph.order(), "nodes": nodes}


def _node_parts(node: Node, params: dict[str, Any], flow_image: str | None) -> dict[str, Any]:
    """The parts ``verdict.decide`` builds, and the reason a step runs whatever its key."""
    parts, why = node_parts(node, params=params, upstream=_Outputs(), flow_image=flow_image)
    if parts is None:
        return {"parts": None, "reason": why}
    return {"parts": parts.to_json(), "reason": None if node.step.opts.cache else "cache disabled"}


@attrs.frozen
class SinceRow:
    """One node's verdict since REV, the reason in ``plan``'s words, and the code parts that changed."""

    node: str
    verdict: str  # one of VERDICTS
    reason: str
    changed: tuple[str, ...] = ()  # the functions and values whose code changed

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "verdict": self.verdict, "reason": self.reason, "changed": list(self.changed)}


@attrs.frozen
class SinceReport:
    """Every node of the flow now, then those only REV has; ``commit`` is what REV named."""

    flow: str
    since: str
    commit: str
    note: str | None  # set when the flow is not at REV: every step is new
    rows: tuple[SinceRow, ...]

    def counts(self) -> dict[str, int]:
        return {verdict: sum(row.verdict == verdict for row in self.rows) for verdict in VERDICTS}

    def summary(self) -> str:
        counts = self.counts()
        return (f"{counts['re-runs']} re-run, {counts['new step']} new, {counts['after upstream']} after upstream, "
                f"{counts['unchanged']} unchanged, {counts['removed']} removed since {self.since} ({self.commit[:12]})")

    def to_json(self) -> dict[str, Any]:
        return {"flow": self.flow, "since": self.since, "commit": self.commit, "note": self.note,
                "counts": self.counts(), "steps": [row.to_json() for row in self.rows]}


def compare(old: dict[str, Any] | None, new: dict[str, Any], since: str) -> list[SinceRow]:
    """Every node of ``new`` in its order, then the nodes only ``old`` has."""
    before = old["nodes"] if old else {}
    pending: set[str] = set()
    rows: list[SinceRow] = []
    for name in new["order"]:
        entry = new["nodes"][name]
        row = _row(name, before.get(name), entry, since)
        waiting = [up for up in entry["upstream"] if up in pending]
        if row.verdict == "unchanged" and waiting:
            row = SinceRow(name, "after upstream", f"after {', '.join(waiting)}: re-runs only if an input changes")
        if row.verdict != "unchanged":
            pending.add(name)
        rows.append(row)
    rows += [SinceRow(name, "removed", f"in the flow at {since}, not now") for name in (old or {}).get("order", [])
             if name not in new["nodes"]]
    return rows


def _row(name: str, old: dict[str, Any] | None, new: dict[str, Any], since: str) -> SinceRow:
    if old is None:
        return SinceRow(name, "new step", f"no such step at {since}")
    if new["reason"] is not None:
        return SinceRow(name, "re-runs", new["reason"])
    if old["parts"] is None or old["reason"] is not None:
        return SinceRow(name, "re-runs", f"no entry: {old['reason']} at {since}")
    was, now = KeyParts.from_json(old["parts"]), KeyParts.from_json(new["parts"])
    reasons = differences(was, now)
    if not reasons:
        return SinceRow(name, "unchanged", "same code, arguments and environment")
    changed = sorted(part for part in set(was.code.parts) | set(now.code.parts)
                     if was.code.parts.get(part) != now.code.parts.get(part))
    return SinceRow(name, "re-runs", "; ".join(reasons), tuple(changed))


@attrs.frozen
class FlowLocation:
    """Where a FLOW reference points: a file (resolved) or a module, and the attribute if given."""

    file: Path | None
    module: str | None
    attr: str | None

    def anchor(self) -> Path:
        """A folder in the flow's repository."""
        if self.file is not None:
            return self.file.parent
        source = getattr(sys.modules.get(self.module or ""), "__file__", None)
        return Path(source).resolve().parent if source else Path.cwd()


@attrs.frozen
class Revision:
    """A commit of the repository that holds the flow."""

    root: Path  # the repository's top folder
    rev: str  # as the user gave it
    commit: str


def since_report(flow: FlowSpec, params: dict[str, Any], where: FlowLocation, raw_params: list[str],
                 rev: str) -> SinceReport:
    """Compare this tree's flow (already loaded) with the same flow at ``rev``."""
    here = json.loads(json.dumps(snapshot(flow, params)))  # what the child's JSON reads as
    revision = find_revision(where.anchor(), rev)
    with tree_at(revision) as tree:
        old, note = _snapshot_at(revision, tree, where, raw_params)
    return SinceReport(flow.name, rev, revision.commit, note, tuple(compare(old, here, rev)))


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError:
        raise UsageError("plan --since needs git, and there is no git command on PATH") from None


def find_revision(folder: Path, rev: str) -> Revision:
    """The repository holding ``folder`` and the commit ``rev`` names; one-line errors."""
    top = _git(folder, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise UsageError(f"plan --since: {folder} is not in a git repository (run plan without --since there)")
    root = Path(top.stdout.strip()).resolve()
    found = _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    if found.returncode != 0 or not rev:
        shallow = _git(root, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"
        fix = ("this clone is shallow: git fetch --unshallow" if shallow
               else "give a commit, branch or tag; git log --oneline lists them")
        raise UsageError(f"plan --since {rev!r}: no such commit in the git repository at {root} ({fix})")
    return Revision(root, rev, found.stdout.strip())


@contextlib.contextmanager
def tree_at(revision: Revision) -> Iterator[Path]:
    """The files of the commit in a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="flowkit-since-") as tmp, tempfile.TemporaryFile() as errors:
        tree = Path(tmp).resolve()
        archive = subprocess.Popen(["git", "-C", str(revision.root), "archive", "--format=tar", revision.commit],
                                   stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL)
        assert archive.stdout is not None
        with archive.stdout, tarfile.open(fileobj=archive.stdout, mode="r|") as tar:
            for member in tar:
                try:
                    tar.extract(member, tree, filter="data")
                except tarfile.FilterError:  # a link out of the tree: the flow cannot rely on it
                    continue
        if archive.wait() != 0:
            errors.seek(0)
            text = errors.read().decode(errors="replace").strip().splitlines()
            raise UsageError(f"plan --since: git archive {revision.commit[:12]} failed: {text[-1] if text else 'no message'}")
        yield tree


def _in_tree(path: Path, root: Path, tree: Path) -> Path | None:
    """``path`` inside the repository, as it is in the tree; None outside the repository."""
    try:
        relative = path.resolve().relative_to(root)
    except (ValueError, OSError):
        return None
    return tree / relative


def _snapshot_at(revision: Revision, tree: Path, where: FlowLocation,
                 raw_params: list[str]) -> tuple[dict[str, Any] | None, str | None]:
    """The flow's snapshot at REV from a child process, or None and why when the flow is not there."""
    label = f"{revision.rev} ({revision.commit[:12]})"
    if where.file is not None:
        file = _in_tree(where.file, revision.root, tree)
        shown = where.file.relative_to(revision.root) if file is not None else where.file
        if file is None or not file.is_file():
            return None, f"flow file {shown} is not in {label}: every step is new"
        ref = f"{file}:{where.attr}" if where.attr else str(file)
    else:
        ref = f"{where.module}:{where.attr}" if where.attr else str(where.module)
    translated = []
    for entry in sys.path:
        moved = _in_tree(Path(entry), revision.root, tree) if entry else None
        translated.append(str(moved) if moved is not None and moved.exists() else entry)
    cwd = _in_tree(Path.cwd(), revision.root, tree)
    paths = {"here": [_FLOWKIT_HOME, *sys.path], "tree": [str(tree), *translated]}
    with tempfile.TemporaryDirectory(prefix="flowkit-since-out-") as out:
        target = os.path.join(out, "parts.json")
        command = [sys.executable, "-c", _CHILD, json.dumps(paths), "plan", ref,
                   *(f"--param={item}" for item in raw_params), "--write-key-parts", target]
        done = subprocess.run(command, cwd=cwd if cwd is not None and cwd.is_dir() else tree, capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, check=False)
        if done.returncode != 0 or not os.path.exists(target):
            raise LoadError(f"plan --since: at {label}: {_child_error(done.stderr, tree)}")
        with open(target, encoding="utf-8") as file_:
            found = json.load(file_)
    if "missing" in found:
        return None, f"{found['missing']} at {label}: every step is new"
    return found, None


def _child_error(stderr: str, tree: Path) -> str:
    """The child's error without its ``error:`` prefix, paths shown relative to the tree."""
    text = stderr.strip().replace(str(tree) + os.sep, "")
    if text.startswith("error: "):
        return text[len("error: "):]
    lines = text.splitlines()
    return lines[-1] if lines else "the flow could not be loaded"
