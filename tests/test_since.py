"""``flowkit plan FLOW --since REV``: from code alone, which steps a change since a git revision
re-runs and which function changed; and that it predicts what a real plan against a store says."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HELPERS_1 = '''
def normalize(xs):
    return [x / max(xs) for x in xs]
'''
HELPERS_2 = '''
def normalize(xs):
    top = max(xs) or 1
    return [x / top for x in xs]
'''
FLOW_1 = '''
import flowkit as fk
from since_helpers import normalize


@fk.step
def load(n: int):
    return list(range(1, n + 1))


@fk.step
def clean(xs):
    return normalize(xs)


@fk.step
def total(xs):
    return sum(xs)


@fk.step
def count(xs):
    return len(xs)


@fk.flow
def pipeline(n: int = 5):
    rows = load(n)
    return total(clean(rows)), count(rows)
'''
# commit 2: normalize() changes, count() gets a comment, biggest() is new
FLOW_2 = FLOW_1.replace("    return len(xs)", "    # the number of rows, not their sum\n    return len(xs)").replace(
    "@fk.flow", "@fk.step\ndef biggest(xs):\n    return max(xs)\n\n\n@fk.flow").replace(
    "count(rows)\n", "count(rows), biggest(rows)\n")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.com",
                           "-c", "commit.gpgsign=false", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def flowkit(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command line in a process of its own, as a user (or CI) runs it."""
    return subprocess.run([sys.executable, "-m", "flowkit", *args], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)


def commit(repo: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (repo / name).write_text(textwrap.dedent(text))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with two commits of one flow (FLOW_1, then FLOW_2 and HELPERS_2)."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q")
    commit(path, {"pipeline_flow.py": FLOW_1, "since_helpers.py": HELPERS_1}, "one")
    commit(path, {"pipeline_flow.py": FLOW_2, "since_helpers.py": HELPERS_2}, "two")
    return path


def since(repo: Path, rev: str = "HEAD~1", *args: str) -> dict:
    done = flowkit(repo, "plan", "pipeline_flow.py", "--since", rev, "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def verdicts(report: dict) -> dict[str, str]:
    return {step["node"]: step["verdict"] for step in report["steps"]}


def test_since_names_the_step_whose_helper_changed_and_nothing_a_comment_touched(repo: Path) -> None:
    done = flowkit(repo, "plan", "pipeline_flow.py", "--since", "HEAD~1")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:6]}
    assert rows["clean"].split(None, 1)[1].split() == ["re-runs", "code", "changed:", "helper", "normalize()"]
    assert "after upstream" in rows["total"] and "after clean" in rows["total"]
    assert "unchanged" in rows["count"] and "unchanged" in rows["load"]
    assert "new step" in rows["biggest"]
    assert "1 re-run, 1 new, 1 after upstream, 2 unchanged, 0 removed since HEAD~1" in done.stdout


def test_since_json_shape(repo: Path) -> None:
    report = since(repo)
    assert set(report) == {"flow", "since", "commit", "note", "counts", "steps"}
    assert (report["flow"], report["since"], report["note"]) == ("pipeline", "HEAD~1", None)
    assert report["commit"] == git(repo, "rev-parse", "HEAD~1")
    assert [step["node"] for step in report["steps"]] == ["load", "clean", "total", "count", "biggest"]
    assert verdicts(report) == {"load": "unchanged", "clean": "re-runs", "total": "after upstream",
                                "count": "unchanged", "biggest": "new step"}
    clean = report["steps"][1]
    assert clean == {"node": "clean", "verdict": "re-runs", "reason": "code changed: helper normalize()",
                     "changed": ["normalize"]}
    assert report["counts"] == {"re-runs": 1, "new step": 1, "after upstream": 1, "unchanged": 2, "removed": 0}
    by_module = flowkit(repo, "plan", "pipeline_flow:pipeline", "--since", "HEAD~1", "--json")
    assert by_module.returncode == 0, by_module.stderr
    assert json.loads(by_module.stdout)["steps"] == report["steps"]  # a module reference reads the same


def test_since_agrees_with_a_real_plan_against_the_store(repo: Path, tmp_path: Path) -> None:
    """Run commit 1 into a store, go back to commit 2: the steps plan says run are the ones
    --since said re-run or are new, and its after-upstream ones are the same."""
    store = str(tmp_path / "store")
    predicted = verdicts(since(repo))
    git(repo, "checkout", "-q", "HEAD~1")
    ran = flowkit(repo, "run", "pipeline_flow.py", "--store", store)
    assert ran.returncode == 0, ran.stderr
    git(repo, "checkout", "-q", "-")
    done = flowkit(repo, "plan", "pipeline_flow.py", "--store", store, "--json")
    assert done.returncode == 0, done.stderr
    plan = {step["node"]: step["verdict"] for step in json.loads(done.stdout)["steps"]}
    assert {n for n, v in plan.items() if v == "run"} == {n for n, v in predicted.items() if v in ("re-runs", "new step")}
    assert {n for n, v in plan.items() if v == "after upstream"} == {n for n, v in predicted.items() if v == "after upstream"}
    assert {n for n, v in plan.items() if v == "cached"} == {n for n, v in predicted.items() if v == "unchanged"}


def test_version_param_default_and_removed_step_in_the_working_tree(repo: Path) -> None:
    """Uncommitted edits count (the current tree is the files on disk); a default that changed
    re-runs its step unless -p pins the value."""
    text = FLOW_2.replace("@fk.step\ndef load", '@fk.step(version="2")\ndef load').replace("n: int = 5", "n: int = 7")
    text = text.replace(", biggest(rows)\n", "\n")
    (repo / "pipeline_flow.py").write_text(textwrap.dedent(text))
    report = since(repo, "HEAD")
    rows = {step["node"]: step for step in report["steps"]}
    assert rows["load"]["verdict"] == "re-runs"
    assert rows["load"]["reason"] == "version changed: None -> 2; param changed: n 5 -> 7"
    assert rows["biggest"]["verdict"] == "removed"
    assert {rows[n]["verdict"] for n in ("clean", "total", "count")} == {"after upstream"}
    pinned = since(repo, "HEAD", "-p", "n=5")
    assert [s["reason"] for s in pinned["steps"] if s["node"] == "load"] == ["version changed: None -> 2"]


def test_a_flow_not_at_rev_makes_every_step_new(repo: Path) -> None:
    (repo / "other_flow.py").write_text(textwrap.dedent(FLOW_1))
    done = flowkit(repo, "plan", "other_flow.py", "--since", "HEAD", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert "other_flow.py is not in HEAD" in report["note"]
    assert set(verdicts(report).values()) == {"new step"}
    done = flowkit(repo, "plan", "other_flow", "--since", "HEAD", "--json")
    assert done.returncode == 0, done.stderr
    assert "module other_flow is not there at HEAD" in json.loads(done.stdout)["note"]


@pytest.mark.parametrize("rev, fragment", [("no-such-branch", "no such commit"), ("HEAD~9", "no such commit"),
                                           ("--all", "no such commit")])
def test_a_bad_rev_exits_2_with_one_line(repo: Path, rev: str, fragment: str) -> None:
    done = flowkit(repo, "plan", "pipeline_flow.py", f"--since={rev}")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
    assert fragment in done.stderr and repr(rev) in done.stderr


def test_a_flow_outside_git_and_since_with_a_store_are_refused(repo: Path, tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "pipeline_flow.py").write_text(textwrap.dedent(FLOW_1))
    (loose / "since_helpers.py").write_text(textwrap.dedent(HELPERS_1))
    done = flowkit(loose, "plan", "pipeline_flow.py", "--since", "HEAD")
    assert done.returncode == 2 and "is not in a git repository" in done.stderr and "Traceback" not in done.stderr
    done = flowkit(repo, "plan", "pipeline_flow.py", "--since", "HEAD", "--store", str(tmp_path / "store"))
    assert done.returncode == 2 and "reads no store" in done.stderr
    assert not (tmp_path / "store").exists()


def test_a_flow_that_fails_to_import_at_rev_says_where(repo: Path) -> None:
    commit(repo, {"since_helpers.py": HELPERS_2 + "\nraise RuntimeError('broken helper')\n"}, "three")
    commit(repo, {"since_helpers.py": HELPERS_2}, "four")
    done = flowkit(repo, "plan", "pipeline_flow.py", "--since", "HEAD~1")
    assert done.returncode == 2 and "Traceback (most recent" not in done.stderr.splitlines()[0]
    assert done.stderr.startswith("error: plan --since: at HEAD~1 (") and "broken helper" in done.stderr
    assert "flowkit-since-" not in done.stderr  # paths are shown as in the repository
