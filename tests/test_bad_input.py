"""Bad input gets one or two clear lines and the right exit code: never a traceback, a hang or silence.

Issue #8, part C. Most cases go through ``flowkit.cli.main``; the ones where a real process
matters (a run that could hang, a compiled script looking for a Python) run one, always with a
timeout.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import flowkit as fk
from flowkit.cli import main
from flowkit.errors import FlowDefinitionError, ParameterError, UsageError

REPO = Path(__file__).resolve().parents[1]
HELLO = str(REPO / "examples" / "hello" / "flow.py")

ONE_STEP = '''
import flowkit as fk

@fk.step
def one(x: int) -> int:
    return x + 1

@fk.flow
def single(x: int = 1):
    return one(x)
'''


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def assert_clear(err: str, *fragments: str, lines: int = 2) -> None:
    """One ``error:`` message of at most ``lines`` lines, holding every fragment, without a traceback."""
    assert err.startswith("error: "), err
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) <= lines, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


# -- --workers -------------------------------------------------------------------------------------


def test_workers_minus_one_is_refused_at_once_instead_of_hanging(tmp_path: Path) -> None:
    flow = write(tmp_path, "single.py", ONE_STEP)
    proc = subprocess.run([sys.executable, "-m", "flowkit", "run", str(flow), "--backend", "process",
                           "--workers", "-1", "--store", str(tmp_path / "s")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert_clear(proc.stderr, "--workers must be a whole number of at least 1, got -1", "hint: leave --workers out")


def test_workers_zero_is_refused_not_silently_all_cores(tmp_path: Path, capsys) -> None:
    flow = write(tmp_path, "single.py", ONE_STEP)
    code, out, err = cli(capsys, "run", str(flow), "--backend", "process", "--workers", "0",
                         "--store", str(tmp_path / "s"))
    assert code == 2 and out == ""
    assert_clear(err, "--workers must be a whole number of at least 1, got 0")
    assert not (tmp_path / "s").exists()  # refused before anything ran


@pytest.mark.parametrize("workers", [0, -1, True, 1.5, "2"])
def test_the_shared_workers_check_refuses_what_cannot_run(workers: object) -> None:
    from flowkit.authoring.params import check_workers

    with pytest.raises(UsageError, match="workers must be a whole number of at least 1"):
        check_workers(workers)
    assert check_workers(None) is None and check_workers(3) == 3


def test_flow_run_refuses_bad_workers_too(tmp_path: Path) -> None:
    """The Python API: ``Flow.run(workers=-1)`` must not hang either (flow.py calls check_workers)."""
    write(tmp_path, "single.py", ONE_STEP)
    script = ("import single\n"
              "try:\n"
              "    single.single.run(backend='process', workers=-1, store='s')\n"
              "except Exception as exc:\n"
              "    print(type(exc).__name__, exc)\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert proc.stdout.startswith("UsageError workers must be a whole number of at least 1, got -1"), proc.stdout


# -- a flow file that does not import --------------------------------------------------------------


def test_a_syntax_error_in_the_flow_file_shows_file_line_and_the_line(tmp_path: Path, capsys) -> None:
    flow = write(tmp_path, "broken.py", '''
        import flowkit as fk

        @fk.step
        def one(x):
            return x +
    ''')
    code, _, err = cli(capsys, "run", str(flow), "--store", str(tmp_path / "s"))
    assert code == 2
    assert_clear(err, f"flow file {flow}, line 6: SyntaxError: invalid syntax")
    assert err.splitlines()[1].strip() == "return x +"  # the offending line


def test_a_syntax_error_in_a_module_the_flow_imports_names_that_file(tmp_path: Path, capsys) -> None:
    write(tmp_path, "helpers.py", "def half(x:\n    return x / 2\n")
    flow = write(tmp_path, "uses_helpers.py", "import helpers\n" + ONE_STEP)
    code, _, err = cli(capsys, "plan", str(flow), "--store", str(tmp_path / "s"))
    assert code == 2
    assert_clear(err, f"flow file {flow}: {tmp_path / 'helpers.py'}, line 1: SyntaxError:", "def half(x:")


def test_an_exception_while_importing_shows_only_the_users_frames(tmp_path: Path, capsys) -> None:
    write(tmp_path, "settings.py", '''
        import os

        def setting(name):
            return os.environ[name]

        DATA_DIR = setting("FLOWKIT_TEST_SURELY_UNSET")
    ''')
    flow = write(tmp_path, "configured.py", "from settings import DATA_DIR\n" + ONE_STEP)
    code, _, err = cli(capsys, "run", str(flow), "--store", str(tmp_path / "s"))
    assert code == 2
    lines = err.splitlines()
    assert lines[0] == f"error: flow file {flow} raised KeyError while importing: 'FLOWKIT_TEST_SURELY_UNSET'"
    assert lines[1] == "Traceback (most recent call last):"
    assert f'File "{flow}", line 1, in <module>' in lines[2]
    assert 'DATA_DIR = setting("FLOWKIT_TEST_SURELY_UNSET")' in err and "return os.environ[name]" in err
    assert lines[-1] == "KeyError: 'FLOWKIT_TEST_SURELY_UNSET'"
    assert "flowkit/" not in err and "importlib" not in err  # none of flowkit's or importlib's frames
    assert len(lines) < 15


def test_an_exception_importing_a_flow_module_is_shown_the_same_way(tmp_path: Path, capsys,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "badpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "flows.py").write_text("raise RuntimeError('no config')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    code, _, err = cli(capsys, "run", "badpkg.flows", "--store", str(tmp_path / "s"))
    assert code == 2
    assert err.splitlines()[0] == "error: flow module badpkg.flows raised RuntimeError while importing: no config"
    assert "flowkit/" not in err and "importlib" not in err
    sys.modules.pop("badpkg", None)


# -- parameters ------------------------------------------------------------------------------------


def test_a_json_value_nested_10000_deep_is_a_parameter_error(tmp_path: Path, capsys) -> None:
    flow = write(tmp_path, "nested.py", '''
        import flowkit as fk

        @fk.step
        def size(rows: list) -> int:
            return len(rows)

        @fk.flow
        def nested(rows: list = []):
            return size(rows)
    ''')
    deep = "[" * 10_000 + "]" * 10_000
    code, _, err = cli(capsys, "run", str(flow), "-p", f"rows={deep}", "--store", str(tmp_path / "s"))
    assert code == 2
    assert_clear(err, "flow 'nested': parameter 'rows': the value nests deeper than 100 levels")


def test_a_deep_value_from_python_is_refused_too(tmp_path: Path) -> None:
    @fk.step
    def size(rows: list) -> int:
        return len(rows)

    @fk.flow
    def nested(rows: list = []):
        return size(rows)

    value: list = []
    for _ in range(5000):
        value = [value]
    with pytest.raises(ParameterError, match="'rows': the value nests deeper than 100 levels"):
        nested.run(rows=value, store=tmp_path / "s")
    with pytest.raises(ParameterError, match="'rows': the default nests deeper than 100 levels"):
        fk.flow(lambda rows=value: size(rows))


# -- step options ----------------------------------------------------------------------------------


def test_env_takes_text_and_numbers_and_refuses_what_has_no_one_text(tmp_path: Path, capsys) -> None:
    assert fk.step(env={"THREADS": 3, "RATE": 0.5, "MODE": "fast"})(lambda: 1).opts.env == (
        ("MODE", "fast"), ("RATE", "0.5"), ("THREADS", "3"))
    flow = write(tmp_path, "envs.py", '''
        import flowkit as fk

        @fk.step(env={"VERBOSE": True})
        def one() -> int:
            return 1

        @fk.flow
        def envs():
            return one()
    ''')
    code, _, err = cli(capsys, "run", str(flow), "--store", str(tmp_path / "s"))
    assert code == 2
    assert_clear(err, f"step 'one' at {flow}:4: option 'env': 'VERBOSE' is True (bool)", "hint:")
    for value in (None, {"a": 1}, [1]):
        with pytest.raises(FlowDefinitionError, match=r"step 'f' at .*test_bad_input.py:\d+: option 'env': 'X' is"):
            def f() -> int:
                return 1
            fk.step(env={"X": value})(f)


@pytest.mark.parametrize("decorator, fragments", [
    ('@fk.step(timeout="10 minutes")', ["option 'timeout': cannot read duration '10 minutes'", "'30s', '10m'"]),
    ('@fk.step(resources=fk.Resources(memory="4GB"))', ["option 'resources': cannot read memory '4GB'", "'4Gi'"]),
    ('@fk.step(resources={"memory": "lots"})', ["option 'resources': cannot read memory 'lots'"]),
    ('@fk.step(retry_delay="later")', ["option 'retry_delay': cannot read duration 'later'"]),
])
def test_a_bad_timeout_or_memory_names_the_step_its_line_and_the_option(tmp_path: Path, capsys, decorator: str,
                                                                       fragments: list[str]) -> None:
    flow = write(tmp_path, "options.py", f'''
        import flowkit as fk


        {decorator}
        def train() -> int:
            return 1

        @fk.flow
        def options():
            return train()
    ''')
    code, _, err = cli(capsys, "run", str(flow), "--store", str(tmp_path / "s"))
    assert code == 2
    assert_clear(err, f"error: step 'train' at {flow}:5: ", *fragments)


def test_step_options_copies_name_the_step_too() -> None:
    @fk.step
    def train() -> int:
        return 1

    with pytest.raises(FlowDefinitionError, match=r"step 'fast' at .*test_bad_input.py:\d+: option 'timeout'"):
        train.options(name="fast", timeout="soon")


# -- compile options a target does not read --------------------------------------------------------


@pytest.mark.parametrize("target, option, fragment", [
    ("shell", ["--image", "python:3.11"], "--image is not used by the shell target (only by argo)"),
    ("airflow", ["--volume-claim", "pvc"], "--volume-claim is not used by the airflow target (only by argo)"),
    ("airflow", ["--image", "python:3.11"], "--image is not used by the airflow target (only by argo)"),
    ("shell", ["--kind", "cron-workflow"], "--kind is not used by the shell target (only by argo)"),
    ("argo", ["--jobs", "2", "--image", "i"], "--jobs is not used by the argo target (only by shell)"),
    ("airflow", ["--python", "/usr/bin/python3"], "--python is not used by the airflow target (only by argo, shell)"),
    ("shell", ["--jobs", "0"], "--jobs must be a whole number of at least 1, got 0"),
])
def test_compile_options_the_target_does_not_use_are_refused(tmp_path: Path, capsys, target: str,
                                                             option: list[str], fragment: str) -> None:
    code, out, err = cli(capsys, "compile", HELLO, "--target", target, "-o", str(tmp_path / "out"),
                         "--store", str(tmp_path / "s"), *option)
    assert code == 2 and out == ""
    assert_clear(err, fragment)
    assert not (tmp_path / "out").exists()


# -- a compiled shell script finds a Python that has flowkit ---------------------------------------


def _fake_python(folder: Path, body: str) -> Path:
    """A ``python3`` first on PATH: one without flowkit, or one that is really this interpreter."""
    folder.mkdir(exist_ok=True)
    path = folder / "python3"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


WITHOUT_FLOWKIT = "echo \"ModuleNotFoundError: No module named 'blake3'\" >&2; exit 1"


def _compiled_hello(tmp_path: Path, *extra: str) -> Path:
    """``flowkit compile`` run by this interpreter (a virtualenv's, like the README's .venv/bin/flowkit)."""
    proc = subprocess.run([sys.executable, "-m", "flowkit", "compile", HELLO, "--target", "shell",
                           "-o", str(tmp_path / "out"), "--store", str(tmp_path / "store"), *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "out" / "hello.sh"


def _run(script: Path, tmp_path: Path, *args: str, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    """The script run as from a shell where no virtualenv is active: our python3 first on PATH."""
    env = {key: value for key, value in os.environ.items() if key not in ("FLOWKIT_PYTHON", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin"
    return subprocess.run(["bash", str(script), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)


def test_a_compiled_script_runs_without_the_venv_active(tmp_path: Path) -> None:
    script = _compiled_hello(tmp_path)
    bin_dir = tmp_path / "bin"
    _fake_python(bin_dir, WITHOUT_FLOWKIT)
    proc = _run(script, tmp_path, "--name", "Ada", "--run-id", "no-venv", bin_dir=bin_dir)
    assert proc.returncode == 0, proc.stderr
    assert f"python {os.path.abspath(sys.executable)}" in proc.stdout  # the interpreter that compiled it
    assert "run no-venv succeeded" in proc.stdout


def test_a_compiled_script_falls_back_to_python3_and_says_so(tmp_path: Path) -> None:
    script = _compiled_hello(tmp_path, "--python", str(tmp_path / "gone" / "python"))
    bin_dir = tmp_path / "bin"
    _fake_python(bin_dir, f'exec {sys.executable} "$@"')
    proc = _run(script, tmp_path, "--run-id", "fallback", bin_dir=bin_dir)
    assert proc.returncode == 0, proc.stderr
    assert f"flowkit: using python3 ({tmp_path / 'gone' / 'python'}: not found)" in proc.stderr


def test_a_compiled_script_without_a_python_that_has_flowkit_says_how_to_fix_it(tmp_path: Path) -> None:
    script = _compiled_hello(tmp_path, "--python", str(tmp_path / "gone" / "python"))
    bin_dir = tmp_path / "bin"
    _fake_python(bin_dir, WITHOUT_FLOWKIT)
    proc = _run(script, tmp_path, "--run-id", "nowhere", bin_dir=bin_dir)
    assert proc.returncode == 127
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        f"flowkit: no Python here can run the steps ({tmp_path / 'gone' / 'python'}: not found; "
        "python3: cannot import flowkit: ModuleNotFoundError: No module named 'blake3')",
        "flowkit: pass --python PATH or set FLOWKIT_PYTHON to a Python that has flowkit installed",
    ]
    assert not (tmp_path / "store").exists()  # no step started

    proc = _run(script, tmp_path, "--python", str(bin_dir / "python3"), bin_dir=bin_dir)
    assert proc.returncode == 127
    assert proc.stderr.startswith(f"flowkit: --python {bin_dir / 'python3'} cannot run the steps: cannot import "
                                  "flowkit: ModuleNotFoundError: No module named 'blake3'\n")
