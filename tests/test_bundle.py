"""--bundle: the compiled files run the code that was compiled, from the store, wherever they run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from flowkit.store.bundle import make_bundle
from flowkit.cli import main
from flowkit.loading import load_flow

FLOW = '''
import flowkit as fk
from helpers import scale

@fk.step
def numbers(n: int) -> list:
    return list(range(n))

@fk.step
def scaled(xs: list) -> list:
    return scale(xs)

@fk.flow
def shipped(n: int = 4):
    return scaled(numbers(n))
'''


def _project(root: Path) -> Path:
    (root / "flows").mkdir(parents=True)
    (root / "helpers.py").write_text("def scale(xs):\n    return [x * 10 for x in xs]\n")
    (root / "flows" / "shipped.py").write_text(textwrap.dedent(FLOW))
    (root / "flows" / "__pycache__").mkdir()
    (root / ".venv").mkdir()
    (root / ".venv" / "ignored.py").write_text("raise SystemExit('not shipped')\n")
    return root


def test_a_bundle_is_deterministic_and_holds_only_the_project_sources(tmp_path: Path) -> None:
    root = _project(tmp_path / "project")
    first, second = make_bundle(root), make_bundle(root)
    assert first == second
    import io
    import zipfile

    assert zipfile.ZipFile(io.BytesIO(first)).namelist() == ["helpers.py", "flows/shipped.py"]


def test_a_bundled_shell_script_runs_after_the_project_is_gone(tmp_path: Path, monkeypatch, capsys) -> None:
    root = _project(tmp_path / "project")
    store = tmp_path / "store"
    out = tmp_path / "out"
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root))
    expected = load_flow("flows/shipped.py").run(store=tmp_path / "local-store").result
    assert main(["compile", "flows/shipped.py", "--target", "shell", "--bundle", "--store", str(store),
                 "-o", str(out), "--python", sys.executable]) == 0
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    shutil.rmtree(root)
    script = next(out.glob("*.sh"))
    proc = subprocess.run(["bash", str(script), "--run-id", "shipped-1"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert main(["show", "shipped-1", "--store", str(store), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {n["node"]: n["status"] for n in shown["nodes"]} == {"numbers": "ran", "scaled": "ran"}
    from flowkit.store import open_store

    s = open_store(store)
    assert s.load(s.read_node("shipped-1", "scaled").output) == expected == [0, 10, 20, 30]


def test_run_step_refuses_code_that_differs_from_the_compiled_code(tmp_path: Path) -> None:
    root = _project(tmp_path / "project")
    proc = subprocess.run([sys.executable, "-m", "flowkit", "run-step", "--flow", "flows/shipped.py", "--step",
                           "numbers", "--run-id", "r1", "--store", str(tmp_path / "store"), "--expect-code", "0" * 64],
                          cwd=root, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "differs from the code that was compiled" in proc.stderr and "Traceback" not in proc.stderr


def test_run_step_with_an_unknown_bundle_is_a_store_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "flowkit", "run-step", "--flow", "flows/shipped.py", "--step",
                           "numbers", "--run-id", "r1", "--store", str(tmp_path / "store"), "--bundle", "ab" * 32],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 3 and "has no object" in proc.stderr
