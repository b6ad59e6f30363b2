"""Prebuilt steps (SPEC §10): a script keyed by its bytes and its user imports, a shell command,
a copy through fsspec that is cached only while its destination is up to date, and fk.sweep."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Callable

import fsspec
import pytest

import flowkit as fk
from flowkit.authoring.script_imports import script_manifest
from flowkit.errors import FlowDefinitionError
from flowkit.keys.values import fingerprint

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's folder is the working directory: scripts write their outputs there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def put(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def statuses(run) -> dict[str, str]:
    return {name: outcome.status for name, outcome in run.steps.items()}


# --- script ----------------------------------------------------------------------------------------

SCRIPT_FLOW = '''
from pathlib import Path
import flowkit as fk

HERE = Path(__file__).parent

@fk.step
def length(out) -> int:
    return len(out.read_text())

@fk.flow
def scripted(word: str = "hi"):
    made = fk.steps.script(HERE / "make.py", args=["--word", word], outputs="out.txt")
    return length(made)
'''

MAKE = '''
import sys
import helpers
helpers.write("out.txt", sys.argv[2])
'''

HELPERS = '''
def write(path, word):
    with open(path, "w") as out:
        out.write(word * 2)
'''


def test_a_script_reruns_when_it_or_a_helper_it_imports_changes_and_is_cached_otherwise(
        here: Path, write_module: Callable[..., object], store: Path) -> None:
    put(here, "make.py", MAKE)
    put(here, "helpers.py", HELPERS)
    mod = write_module(SCRIPT_FLOW)
    first = mod.scripted.run(store=store)
    assert statuses(first) == {"make": "ran", "length": "ran"} and first.result == 4
    assert (here / "out.txt").read_text() == "hihi"
    assert statuses(mod.scripted.run(store=store)) == {"make": "cached", "length": "cached"}

    put(here, "helpers.py", HELPERS.replace("word * 2", "word * 3"))
    assert mod.scripted.plan(store=store)["make"].verdict == "run"
    second = mod.scripted.run(store=store)
    assert statuses(second) == {"make": "ran", "length": "ran"} and second.result == 6

    put(here, "make.py", MAKE + "# a comment is a change of the script's bytes\n")
    assert statuses(mod.scripted.run(store=store))["make"] == "ran"
    assert statuses(mod.scripted.run(store=store, word="hey")) == {"make": "ran", "length": "ran"}
    assert statuses(mod.scripted.run(store=store)) == {"make": "cached", "length": "cached"}


def test_a_module_imported_after_the_flow_was_built_is_in_the_key(
        here: Path, write_module: Callable[..., object], store: Path) -> None:
    """The graph is traced once per process; the script's imports are read each time the key is made,
    so a helper the script starts importing later, then edits, is never served stale."""
    put(here, "make.py", MAKE)
    put(here, "helpers.py", HELPERS)
    put(here, "extra.py", "WORD = 'a'\n")
    mod = write_module(SCRIPT_FLOW)
    mod.scripted.run(store=store)
    put(here, "make.py", MAKE.replace("import helpers", "import helpers, extra").replace("sys.argv[2]", "extra.WORD"))
    assert mod.scripted.run(store=store).result == 2
    put(here, "extra.py", "WORD = 'abc'\n")
    run = mod.scripted.run(store=store)
    assert statuses(run)["make"] == "ran" and run.result == 6


def test_the_manifest_follows_user_imports_transitively_and_leaves_libraries_out(tmp_path: Path) -> None:
    script = put(tmp_path, "main.py", """
        import json, attrs, flowkit
        from pkg import tools
        from pkg.deep import *
        import importlib
        importlib.import_module("dyn")
        def later():
            import lazy
    """)
    put(tmp_path, "pkg/__init__.py", "")
    put(tmp_path, "pkg/tools.py", "from . import shared\nfrom .missing_name import nothing\n")
    put(tmp_path, "pkg/shared.py", "X = 1\n")
    put(tmp_path, "pkg/deep/__init__.py", "")
    put(tmp_path, "pkg/deep/one.py", "")
    put(tmp_path, "dyn.py", "")
    put(tmp_path, "lazy.py", "import pkg.shared\n")
    put(tmp_path, "unused.py", "")
    names = [name for name, _ in script_manifest(str(script))]
    assert names == ["__main__", "dyn", "lazy", "pkg", "pkg.deep", "pkg.deep.one", "pkg.shared", "pkg.tools"]


def test_the_scripts_key_is_its_content_not_its_folder_and_the_same_in_a_fresh_process(tmp_path: Path) -> None:
    keys = []
    for folder in ("a", "b"):
        put(tmp_path / folder, "make.py", MAKE)
        put(tmp_path / folder, "helpers.py", HELPERS)
        keys.append(fingerprint(fk.steps.ScriptSource(str(tmp_path / folder / "make.py"))))
    code = ("import sys; import flowkit as fk; from flowkit.keys.values import fingerprint;"
            "print(fingerprint(fk.steps.ScriptSource(sys.argv[1])))")
    fresh = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a" / "make.py")], capture_output=True,
                           text=True, check=True, env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"})
    assert keys[0] == keys[1] == fresh.stdout.strip()
    put(tmp_path / "b", "helpers.py", HELPERS + "\n")
    assert fingerprint(fk.steps.ScriptSource(str(tmp_path / "b" / "make.py"))) != keys[0]


CHAIN_FLOW = '''
from pathlib import Path
import flowkit as fk

HERE = Path(__file__).parent

@fk.step
def count(n: int) -> int:
    return n * 10

@fk.step
def read(files) -> dict:
    return {name: out.read_text() for name, out in files.items()}

@fk.flow
def chain(n: int = 2):
    first = fk.steps.script(HERE / "emit.py", args=[count(n), n, fk.File(HERE / "data.txt")],
                            outputs=["a.txt", "b.txt"])
    second = fk.steps.script(HERE / "upper.py", args=[first["a.txt"]], outputs="c.txt")
    return read(first), second
'''

EMIT = '''
import sys
counted, n, data = sys.argv[1:]
open("a.txt", "w").write(f"{counted}+{n}:" + open(data).read())
open("b.txt", "w").write("b")
print("emitted", counted)
'''

UPPER = '''
import sys
open("c.txt", "w").write(open(sys.argv[1]).read().upper())
'''


def test_args_take_upstream_outputs_parameters_and_files_and_outputs_flow_downstream(
        here: Path, write_module: Callable[..., object], store: Path) -> None:
    for name, source in (("emit.py", EMIT), ("upper.py", UPPER), ("data.txt", "data")):
        put(here, name, source)
    mod = write_module(CHAIN_FLOW)
    run = mod.chain.run(store=store)
    assert run.status == "succeeded", {n: o.error for n, o in run.steps.items()}
    files, upper = run.result
    assert files == {"a.txt": "20+2:data", "b.txt": "b"}
    assert isinstance(upper, fk.steps.OutputFile) and upper.name == "c.txt" and upper.read_text() == "20+2:DATA"
    (here / "a.txt").unlink()  # a hit serves the outputs from the store, wherever the files went
    assert set(statuses(mod.chain.run(store=store)).values()) == {"cached"}
    put(here, "data.txt", "other")  # an fk.File argument is keyed by content
    again = mod.chain.run(store=store)
    assert statuses(again) == {"count": "cached", "emit": "ran", "upper": "ran", "read": "ran"}
    assert again.result[1].read_text() == "20+2:OTHER"


def test_a_scripts_output_goes_to_the_steps_sys_stdout_and_stderr(
        here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = put(here, "talk.py", "import sys\nprint('to out')\nprint('to err', file=sys.stderr)\n")
    assert fk.steps.script(script) == "to out\n"  # outside a flow: the plain call, its stdout back
    out, err = capsys.readouterr()  # capsys swaps sys.stdout/sys.stderr, not file descriptors 1 and 2
    assert out == "to out\n" and err == "to err\n"


FAIL_FLOW = '''
from pathlib import Path
import flowkit as fk

HERE = Path(__file__).parent

@fk.flow
def failing():
    return fk.steps.script(HERE / "boom.py", name="boom_step")
'''


def test_a_failing_script_fails_its_step_with_the_end_of_its_stderr(
        here: Path, write_module: Callable[..., object], store: Path) -> None:
    put(here, "boom.py", "import sys\nfor i in range(50):\n    print(f'line {i}', file=sys.stderr)\nsys.exit(3)\n")
    run = write_module(FAIL_FLOW).failing.run(store=store)
    assert run.status == "failed"
    error = run.steps["boom_step"].error
    assert error.startswith("CommandFailed: step 'boom_step': script boom.py exited with code 3")
    assert "line 49" in error and "line 30" in error and "line 29\n" not in error


def test_a_declared_output_the_script_did_not_write_fails_it_even_if_an_old_file_is_there(
        here: Path, write_module: Callable[..., object], store: Path) -> None:
    put(here, "boom.py", "print('forgot to write')\n")
    (here / "out.txt").write_text("left by an earlier run")
    mod = write_module(FAIL_FLOW.replace('name="boom_step"', 'name="boom_step", outputs="out.txt"'))
    error = mod.failing.run(store=store).steps["boom_step"].error
    assert "did not write its declared output 'out.txt'" in error
    assert not (here / "out.txt").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal and /proc are Linux's")
def test_a_script_past_its_timeout_is_killed_with_its_step(here: Path, store: Path) -> None:
    """The step's process is killed at the timeout; the script it started must not run on unseen."""
    put(here, "sleeper.py", "import os, time\nopen('pid.txt', 'w').write(str(os.getpid()))\ntime.sleep(120)\n")

    @fk.flow
    def slow():
        return fk.steps.script("sleeper.py", timeout="1s")

    run = slow.run(store=store)
    assert run.status == "failed" and "timed out" in run.steps["sleeper"].error
    pid = int((here / "pid.txt").read_text())
    for _ in range(200):  # the kernel delivers the kill at once; this only bounds a slow machine
        if not _alive(pid):
            break
        time.sleep(0.05)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a reaper (a container's init may not reap)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_script_calls_are_named_after_the_script_and_numbered(here: Path) -> None:
    put(here, "train.py", "")

    @fk.flow
    def twice():
        return (fk.steps.script("train.py"), fk.steps.script("train.py", args=["x"]),
                fk.steps.script("train.py", name="other"))

    assert list(twice.graph.nodes) == ["train", "train-2", "other"]
    assert twice.graph.nodes["train"].call_site.startswith(__file__)


@pytest.mark.parametrize(("call", "fragment"), [
    (lambda: fk.steps.script("nowhere.py"), "there is no script 'nowhere.py'"),
    (lambda: fk.steps.script("ok.py", args="--lr 1"), "args must be a list"),
    (lambda: fk.steps.script("ok.py", args=[{"a": 1}]), "args[0] is {'a': 1}: a dict has no text form"),
    (lambda: fk.steps.script("ok.py", args=[True]), "a bool has no one text form"),
    (lambda: fk.steps.script("ok.py", outputs=[]), "outputs must be a file name or a non-empty list"),
    (lambda: fk.steps.script("ok.py", outputs=["a", "a"]), "outputs name a file twice"),
    (lambda: fk.steps.script("ok.py", args=[fk.File("ok.py")], outputs="ok.py"), "both an input and a declared output"),
    (lambda: fk.steps.script("ok.py", retry=2), "unknown option(s) retry"),
    (lambda: fk.steps.shell(""), "the command is empty"),
    (lambda: fk.steps.shell([]), "must be a string or a non-empty list"),
    (lambda: fk.steps.copy("", "memory://x"), "the source must be a path or URI"),
])
def test_bad_input_to_prebuilt_steps_is_a_clear_error(here: Path, call: Callable[[], object], fragment: str) -> None:
    put(here, "ok.py", "")

    @fk.flow
    def bad():
        return call()

    with pytest.raises(FlowDefinitionError) as info:
        bad.graph
    assert fragment in str(info.value)


# --- shell -----------------------------------------------------------------------------------------

SHELL_FLOW = '''
import flowkit as fk

@fk.step
def word(text: str) -> str:
    return text

@fk.step
def strip(text: str) -> str:
    return text.strip()

@fk.flow
def shelled(text: str = "a b"):
    w = word(text)
    joined = fk.steps.shell('printf "%s|%s" "$1" "$2"', args=[w, "$(touch injected)"])
    listed = fk.steps.shell(["printf", "%s", w], name="listed")
    written = fk.steps.shell('printf x > out.bin', outputs="out.bin", name="written")
    return joined, strip(listed), written
'''


def test_shell_takes_handles_as_arguments_never_as_shell_text_and_returns_stdout(
        here: Path, write_module: Callable[..., object], store: Path) -> None:
    mod = write_module(SHELL_FLOW)
    run = mod.shelled.run(store=store)
    assert run.status == "succeeded", {n: o.error for n, o in run.steps.items()}
    joined, listed, written = run.result
    assert joined == "a b|$(touch injected)" and listed == "a b" and written.read_bytes() == b"x"
    assert not (here / "injected").exists()
    assert set(statuses(mod.shelled.run(store=store)).values()) == {"cached"}
    assert statuses(mod.shelled.run(store=store, text="c"))["shell"] == "ran"


def test_a_failing_command_fails_its_step_with_its_stderr(write_module: Callable[..., object], store: Path) -> None:
    mod = write_module('''
        import flowkit as fk

        @fk.flow
        def bad():
            return fk.steps.shell("echo first >&2; echo it broke >&2; exit 7"), fk.steps.shell(["no-such-program-x"])
    ''')
    run = mod.bad.run(store=store)
    assert run.status == "failed"
    assert run.steps["shell"].error.startswith("CommandFailed: step 'shell': command 'echo first")
    assert "exited with code 7" in run.steps["shell"].error and "  it broke" in run.steps["shell"].error
    assert "command 'no-such-program-x' is not found on PATH" in run.steps["shell-2"].error


# --- copy ------------------------------------------------------------------------------------------

COPY_FLOW = '''
import flowkit as fk

@fk.step
def size(copied) -> int:
    return copied.size

@fk.flow
def copying():
    there = fk.steps.copy("SRC", "MID", name="to_memory")
    home = fk.steps.copy("MID", "BACK", name="to_local").after(there)
    return size(there), home
'''


def test_copy_local_to_memory_and_back_recopies_on_change_and_when_the_destination_is_gone(
        here: Path, write_module: Callable[..., object], store: Path) -> None:
    mid = f"memory://prebuilt-{uuid.uuid4().hex}/data.csv"
    src, back = here / "data.csv", here / "back" / "data.csv"
    src.write_text("a,b\n1,2\n")
    mod = write_module(COPY_FLOW.replace("SRC", str(src)).replace("MID", mid).replace("BACK", str(back)))
    first = mod.copying.run(store=store)
    assert statuses(first) == {"to_memory": "ran", "to_local": "ran", "size": "ran"}
    assert fsspec.open(mid, "rb").open().read() == b"a,b\n1,2\n" and back.read_text() == "a,b\n1,2\n"
    assert first.result[1].uri == str(back) and first.result[0] == 8
    inode = back.stat().st_ino
    # the key needs an up-to-date destination, so the next run records it, without copying again
    assert statuses(mod.copying.run(store=store))["to_local"] == "ran" and back.stat().st_ino == inode
    assert set(statuses(mod.copying.run(store=store)).values()) == {"cached"}

    back.unlink()  # a hit would leave it missing: the destination is checked before the key is had
    plan = mod.copying.plan(store=store)
    assert plan["to_local"].verdict == "run" and "does not hold the source's content" in plan["to_local"].reason
    assert statuses(mod.copying.run(store=store)) == {"to_memory": "cached", "to_local": "ran", "size": "cached"}
    assert back.read_text() == "a,b\n1,2\n"

    src.write_text("a,b\n3,4\n")
    changed = mod.copying.run(store=store)
    assert set(statuses(changed).values()) == {"ran"}  # a copy's output is its content's digest: downstream re-runs
    assert back.read_text() == "a,b\n3,4\n"


def test_copy_of_a_folder_and_of_a_steps_output(here: Path, write_module: Callable[..., object], store: Path) -> None:
    put(here, "tree/a.txt", "1")
    put(here, "tree/sub/b.txt", "2")
    mod = write_module(f'''
        import flowkit as fk

        @fk.flow
        def folders():
            made = fk.steps.shell("printf made > made.txt", outputs="made.txt")
            return fk.steps.copy({str(here / "tree")!r}, "copied"), fk.steps.copy(made, "out/made.txt")
    ''')
    run = mod.folders.run(store=store)
    assert run.status == "succeeded", {n: o.error for n, o in run.steps.items()}
    assert (here / "copied" / "sub" / "b.txt").read_text() == "2" and (here / "out" / "made.txt").read_text() == "made"
    mod.folders.run(store=store)
    assert statuses(mod.folders.run(store=store)) == {"shell": "cached", "copy": "cached", "copy-2": "ran"}
    (here / "copied" / "sub" / "b.txt").write_text("changed at the destination")
    assert statuses(mod.folders.run(store=store))["copy"] == "ran"
    assert (here / "copied" / "sub" / "b.txt").read_text() == "2"


# --- sweep -----------------------------------------------------------------------------------------

SWEEP_FLOW = '''
import flowkit as fk

CALLS = []

@fk.step
def load() -> list:
    return [1, 2, 3]

@fk.step
def train(rows, lr: float, depth: int = 1, kind: str = "tree") -> float:
    CALLS.append((lr, depth))
    return sum(rows) * lr * depth

@fk.step
def best(*scores) -> float:
    return max(scores)

@fk.flow
def grid():
    models = fk.sweep(train, over={"lr": LRS, "depth": [3, 5]}, rows=load(), kind="forest")
    return best(*models)
'''


def test_sweep_makes_one_named_node_per_point_in_grid_order_each_cached_on_its_own(
        write_module: Callable[..., object], store: Path) -> None:
    mod = write_module(SWEEP_FLOW.replace("LRS", "[0.1, 1.0]"))
    assert list(mod.grid.graph.nodes) == ["load", "train[lr=0.1,depth=3]", "train[lr=0.1,depth=5]",
                                          "train[lr=1.0,depth=3]", "train[lr=1.0,depth=5]", "best"]
    assert mod.grid.run(store=store).result == 30.0
    assert mod.CALLS == [(0.1, 3), (0.1, 5), (1.0, 3), (1.0, 5)]

    mod = write_module(SWEEP_FLOW.replace("LRS", "[0.1, 1.0, 2.0]"))
    run = mod.grid.run(store=store)
    assert mod.CALLS == [(2.0, 3), (2.0, 5)] and run.result == 60.0
    assert [name for name, status in statuses(run).items() if status == "ran"] == [
        "train[lr=2.0,depth=3]", "train[lr=2.0,depth=5]", "best"]


def test_sweep_outside_a_flow_calls_the_plain_function_in_grid_order() -> None:
    @fk.step
    def mul(a: int, b: int, c: int = 1) -> int:
        return a * b * c

    assert fk.sweep(mul, over={"a": [1, 2], "b": (10, 100)}, c=2) == [20, 200, 40, 400]

    @fk.flow
    def swept():
        return fk.sweep(mul, over={"a": [1, 2]}, b=3)

    line = swept.fn.__code__.co_firstlineno + 2  # the sweep's own line in the flow body
    assert [node.call_site for node in swept.graph.nodes.values()] == [f"{__file__}:{line}"] * 2


def test_sweep_names_values_without_a_short_stable_text_by_position() -> None:
    @fk.step
    def fit(model, seed: int = 0) -> str:
        return str(model)

    @fk.flow
    def models():
        return fk.sweep(fit, over={"model": [object(), "x" * 50, None]})

    assert list(models.graph.nodes) == ["fit[model#1]", "fit[model#2]", "fit[model=None]"]


@pytest.mark.parametrize(("over", "fixed", "fragment"), [
    ({"lr": 0.1}, {}, "over['lr'] must be a list of values known when the flow is built, got float 0.1"),
    ({"lr": {0.1, 0.2}}, {}, "got set"),
    ({"lr": "0.1"}, {}, "got str"),
    ({"lr": []}, {}, "over['lr'] is empty"),
    ({}, {}, "over must be a non-empty dict"),
    ([0.1], {}, "over must be a non-empty dict"),
    ({"lrr": [0.1]}, {"rows": [1]}, "'lrr' is not a parameter of step 'train'"),
    ({"lr": [0.1]}, {"rows": [1], "typo": 1}, "its parameters: rows, lr, depth"),
    ({"lr": [0.1]}, {"rows": [1], "lr": 1}, "'lr' is both swept over and fixed"),
    ({"lr": [0.1]}, {}, "missing a required argument: 'rows'"),
    ({"lr": [0.1, 0.1]}, {"rows": [1]}, "over['lr'] holds 0.1 twice"),
])
def test_bad_sweeps_are_clear_errors(over: object, fixed: dict, fragment: str) -> None:
    @fk.step
    def train(rows, lr: float, depth: int = 1) -> float:
        return lr

    with pytest.raises(FlowDefinitionError) as info:
        fk.sweep(train, over, **fixed)
    assert fragment in str(info.value) and "fk.sweep('train')" in str(info.value)


def test_sweep_over_a_plain_function_or_a_handle_says_what_to_do() -> None:
    with pytest.raises(FlowDefinitionError, match="the first argument must be a step"):
        fk.sweep(len, {"x": [1]})

    @fk.step
    def one(x: int) -> int:
        return x

    @fk.flow
    def handles(xs: list = [1, 2]):  # noqa: B006 - a JSON default
        return fk.sweep(one, over={"x": xs})

    with pytest.raises(FlowDefinitionError, match="got Param"):
        handles.graph


# --- the example -------------------------------------------------------------------------------------


def test_the_prebuilt_example_runs_and_reruns_from_cache(here: Path, store: Path) -> None:
    from flowkit.loading import load_flow

    flow = load_flow(str(REPO / "examples" / "prebuilt" / "flow.py"))
    first = flow.run(store=store)
    assert first.status == "succeeded", {n: o.error for n, o in first.steps.items()}
    assert first.result["best"]["lr"] in (0.01, 0.1, 1.0)
    assert set(statuses(flow.run(store=store)).values()) == {"cached"}
