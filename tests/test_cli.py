"""The command line: exit codes, errors without tracebacks, and the history commands."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowkit.cli import main

REPO = Path(__file__).resolve().parents[1]
HELLO = str(REPO / "examples" / "hello" / "flow.py")


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_then_rerun_is_all_cached_and_history_shows_it(capsys, store: Path) -> None:
    code, out, _ = cli(capsys, "run", HELLO, "-p", "name=Ada", "--store", str(store))
    assert code == 0 and "3 ran" in out
    code, out, _ = cli(capsys, "run", HELLO, "-p", "name=Ada", "--store", str(store), "--json")
    report = json.loads(out)
    assert {s["status"] for s in report["steps"].values()} == {"cached"}

    code, out, _ = cli(capsys, "runs", "--store", str(store), "--json")
    runs = json.loads(out)
    assert [(r["ran"], r["cached"], r["status"]) for r in runs] == [(0, 3, "succeeded"), (3, 0, "succeeded")]

    code, out, _ = cli(capsys, "show", runs[1]["run_id"][:-1], "--store", str(store))
    assert code == 0 and "name='Ada'" in out and "letters" in out and "count_letters" in out

    code, out, _ = cli(capsys, "show", "last", "--store", str(store), "--json")
    shown = json.loads(out)
    assert shown["run_id"] == report["run_id"]
    assert [m["name"] for m in shown["metrics"]] == ["letters"]  # kept on a cache hit


def test_plan_gives_verdicts_and_reasons(capsys, store: Path) -> None:
    cli(capsys, "run", HELLO, "--store", str(store))
    code, out, _ = cli(capsys, "plan", HELLO, "-p", "name=Bob", "--store", str(store))
    assert code == 0
    lines = out.splitlines()
    assert lines[1].split(None, 2) == ["greet", "run", "param changed: name 'world' -> 'Bob'"]
    assert lines[2].split()[:3] == ["emphasise", "after", "upstream"]
    code, out, _ = cli(capsys, "run", HELLO, "--dry-run", "--store", str(store), "--json")
    assert {s["verdict"] for s in json.loads(out)["steps"]} == {"cached"}


def test_explain_names_the_changed_part(capsys, store: Path) -> None:
    cli(capsys, "run", HELLO, "--store", str(store))
    cli(capsys, "run", HELLO, "-p", "name=Bob", "--store", str(store))
    code, out, _ = cli(capsys, "explain", "last", "greet", "--store", str(store))
    assert code == 0 and "param changed: name 'world' -> 'Bob'" in out
    code, out, _ = cli(capsys, "explain", "last", "emphasise", "--store", str(store), "--json")
    assert json.loads(out)["changes"] == ["input changed: greeting"]


@pytest.mark.parametrize("args, fragment", [
    (["run", HELLO, "-p", "nam=Ada"], "parameters: name"),
    (["run", HELLO, "-p", "name"], "NAME=VALUE"),
    (["run", "no/such/flow.py"], "does not exist"),
    (["run", HELLO + ":nothing"], "flows in"),
    (["run", "no_such_module_xyz"], "no module named"),
    (["run", HELLO, "--backend", "teleport"], "choose one of: local"),
    (["run", HELLO, "--force-step", "nope"], "steps: greet, emphasise, count_letters"),
    (["explain", "nope", "greet"], "no run 'nope'"),
])
def test_usage_errors_exit_2_with_one_clear_message(capsys, store: Path, args: list[str], fragment: str) -> None:
    code, _, err = cli(capsys, *args, "--store", str(store))
    assert code == 2
    assert fragment in err and "Traceback" not in err
    assert err.startswith("error: ")


def test_a_mistyped_parameter_names_it_and_the_type(tmp_path: Path, capsys) -> None:
    (tmp_path / "typed.py").write_text(textwrap.dedent('''
        import flowkit as fk

        @fk.step
        def rows(n: int) -> list:
            return list(range(n))

        @fk.flow
        def typed(n_rows: int = 3):
            return rows(n_rows)
    '''))
    code, _, err = cli(capsys, "run", str(tmp_path / "typed.py"), "-p", "n_rows=ten", "--store", str(tmp_path / "s"))
    assert code == 2 and "parameter 'n_rows' expects int, got value 'ten'" in err


def test_several_flows_in_a_file_are_listed(tmp_path: Path, capsys) -> None:
    (tmp_path / "two.py").write_text("import flowkit as fk\n\n@fk.step\ndef s():\n    return 1\n\n"
                                     "@fk.flow\ndef a():\n    return s()\n\n@fk.flow\ndef b():\n    return s()\n")
    code, _, err = cli(capsys, "run", str(tmp_path / "two.py"))
    assert code == 2 and "several flows: a, b" in err


def test_a_failing_step_exits_1_with_its_traceback(tmp_path: Path) -> None:
    (tmp_path / "failing.py").write_text(textwrap.dedent('''
        import flowkit as fk

        def check(x):
            raise KeyError(f"missing column {x}")

        @fk.step
        def boom(x: str) -> int:
            return check(x)

        @fk.flow
        def failing():
            return boom("price")
    '''))
    proc = subprocess.run([sys.executable, "-m", "flowkit", "run", "failing.py", "--store", "s"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "step 'boom' failed: KeyError: 'missing column price'" in proc.stderr
    assert 'raise KeyError(f"missing column {x}")' in proc.stderr  # the original traceback
    assert "run_flow" not in proc.stderr  # no flowkit internals


def test_graph_formats(capsys) -> None:
    code, out, _ = cli(capsys, "graph", HELLO)
    assert out.splitlines() == ["greet", "emphasise  <- greet", "count_letters  <- emphasise"]
    code, out, _ = cli(capsys, "graph", HELLO, "--format", "mermaid")
    assert out.startswith("graph TD") and "n0 --> n1" in out
    code, out, _ = cli(capsys, "graph", HELLO, "--format", "dot")
    assert '"greet" -> "emphasise";' in out


def test_cache_commands(capsys, store: Path) -> None:
    cli(capsys, "run", HELLO, "--store", str(store))
    cli(capsys, "run", HELLO, "-p", "name=Bob", "--store", str(store))
    code, out, _ = cli(capsys, "cache", "ls", "--store", str(store), "--json")
    assert len(json.loads(out)) == 6
    code, out, _ = cli(capsys, "cache", "du", "--store", str(store), "--json")
    assert json.loads(out)["objects_count"] == 0  # small outputs live inline in the records
    code, out, _ = cli(capsys, "cache", "gc", "--keep", "1", "--store", str(store), "--json")
    assert json.loads(out) == {"runs_removed": 1, "objects_removed": 0, "keys_removed": 3, "bytes_freed": 0}
    code, out, _ = cli(capsys, "plan", HELLO, "-p", "name=Bob", "--store", str(store), "--json")
    assert {s["verdict"] for s in json.loads(out)["steps"]} == {"cached"}
    code, out, _ = cli(capsys, "cache", "reindex", "--store", str(store))
    assert "re-indexed 1 runs" in out
    code, out, _ = cli(capsys, "cache", "clear", "--store", str(store))
    code, out, _ = cli(capsys, "runs", "--store", str(store))
    assert out.strip() == "no runs yet"


def test_python_dash_m_flowkit_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "flowkit", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "run a flow; unchanged steps are cache hits" in proc.stdout


def test_run_step_takes_a_node_named_like_an_option(tmp_path: Path) -> None:
    from flowkit.backends._command import step_argv
    from flowkit.backends.base import CompileOptions

    (tmp_path / "dashed.py").write_text(textwrap.dedent('''
        import flowkit as fk

        @fk.step
        def one() -> int:
            return 1

        @fk.flow
        def dashed():
            return one.options(name="-x")()
    '''))
    options = CompileOptions(flow_ref=f"{tmp_path}/dashed.py:dashed", source="dashed.py", workdir=str(tmp_path),
                             store=(tmp_path / "store").as_uri())
    argv = [sys.executable, *step_argv(options, "-x"), "--run-id", "r1"]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "step '-x' ran" in proc.stdout


@pytest.mark.parametrize("stem", ["json", "my-flow"])
def test_a_flow_file_named_like_a_standard_module_or_not_an_identifier_runs(tmp_path: Path, capsys, stem: str,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import json as real_json

    monkeypatch.setattr(sys, "path", list(sys.path))  # loading puts the flow's folder first: not for later tests

    (tmp_path / f"{stem}.py").write_text(textwrap.dedent('''
        import flowkit as fk

        class Point:
            def __init__(self, x):
                self.x = x

        @fk.step
        def make() -> Point:
            return Point(3)

        @fk.step
        def read(p: Point) -> int:
            return p.x

        @fk.flow
        def named():
            return read(make())
    '''))
    assert main(["run", str(tmp_path / f"{stem}.py"), "--store", str(tmp_path / "s"), "--backend", "process"]) == 0
    assert sys.modules["json"] is real_json and real_json.dumps({"a": 1}) == '{"a": 1}'
    capsys.readouterr()
