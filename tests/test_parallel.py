"""Backends with real processes: parallel branches, retries, timeouts, kills and Ctrl-C."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flowkit.store import open_store

BACKENDS = ["local", "process"]


def statuses(run) -> dict[str, str]:
    return {name: outcome.status for name, outcome in run.steps.items()}


def test_independent_steps_overlap_on_the_process_backend(write_module, store: Path, tmp_path: Path) -> None:
    mod = write_module('''
import time
import flowkit as fk

@fk.step
def nap(label: str) -> list:
    start = time.time()
    time.sleep(2)
    return [start, time.time()]

@fk.step
def both(a: list, b: list) -> list:
    return [a, b]

@fk.flow
def naps():
    return both(nap("a"), nap("b"))
''')
    run = mod.naps.run(store=store, backend="process", workers=2)
    assert run.status == "succeeded"
    (a_start, a_end), (b_start, b_end) = run.result
    assert b_start < a_end and a_start < b_end  # the two 2 s naps ran at the same time


def test_a_failure_finishes_other_branches_then_fails_the_run(write_module, store: Path) -> None:
    mod = write_module('''
import time
import flowkit as fk

@fk.step
def boom() -> int:
    raise ValueError("no")

@fk.step
def slow() -> int:
    time.sleep(0.5)
    return 1

@fk.step
def after(x: int) -> int:
    return x

@fk.flow
def mixed():
    return after(boom()), after.options(name="after_slow")(slow())
''')
    run = mod.mixed.run(store=store, backend="process", workers=2)
    assert run.status == "failed"
    assert statuses(run) == {"boom": "failed", "slow": "ran", "after": "skipped", "after_slow": "ran"}
    assert run.steps["boom"].error == "ValueError: no" and 'raise ValueError("no")' in run.steps["boom"].traceback


@pytest.mark.parametrize("backend", BACKENDS)
def test_retries_make_a_twice_failing_step_succeed(write_module, store: Path, tmp_path: Path, backend: str) -> None:
    counter = tmp_path / "attempts"
    mod = write_module(f'''
import flowkit as fk

@fk.step(retries=2, retry_delay=0.1)
def flaky() -> int:
    path = {str(counter)!r}
    count = int(open(path).read()) if __import__("os").path.exists(path) else 0
    open(path, "w").write(str(count + 1))
    if count < 2:
        raise RuntimeError(f"attempt {{count + 1}} fails")
    return count + 1

@fk.flow
def retried():
    return flaky()
''')
    run = mod.retried.run(store=store, backend=backend)
    assert run.status == "succeeded" and run.result == 3
    assert run.steps["flaky"].attempts == 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_step_past_its_timeout_is_killed_and_retried(write_module, store: Path, tmp_path: Path, backend: str) -> None:
    pids = tmp_path / "pids"
    mod = write_module(f'''
import os, time
import flowkit as fk

@fk.step(timeout=1, retries=1)
def stuck() -> int:
    with open({str(pids)!r}, "a") as f:
        f.write(f"{{os.getpid()}}\\n")
    time.sleep(60)
    return 1

@fk.flow
def hanging():
    return stuck()
''')
    started = time.monotonic()
    run = mod.hanging.run(store=store, backend=backend)
    elapsed = time.monotonic() - started
    outcome = run.steps["stuck"]
    assert run.status == "failed" and outcome.attempts == 2
    assert outcome.error.startswith("timed out after 1s")
    assert elapsed < 30  # two 1 s attempts, not two 60 s sleeps
    for pid in map(int, pids.read_text().split()):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # each attempt's process is gone


def test_metrics_logged_under_a_timeout_are_kept(write_module, store: Path) -> None:
    mod = write_module('''
import flowkit as fk

@fk.step(timeout="30s")
def measured() -> int:
    fk.log_metric("loss", 0.5)
    fk.log_param("mode", "fast")
    return 1

@fk.flow
def isolated():
    return measured()
''')
    run = mod.isolated.run(store=store)
    assert [m.to_json() for m in run.steps["measured"].metrics] == [{"name": "loss", "value": 0.5, "step": None}]
    assert run.steps["measured"].logged_params == {"mode": "fast"}


def _flowkit(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flowkit", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


SLOW_CHAIN = '''
import time
import flowkit as fk

@fk.step
def first(n: int) -> int:
    return n + 1

@fk.step
def second(n: int) -> int:
    return n + 1

@fk.step
def slow(a: int, b: int) -> int:
    time.sleep(SLEEP)
    return a + b

@fk.flow
def interrupted(n: int = 1):
    return slow(first(n), second(n))
'''


def _alive(pid: int) -> bool:
    """Running, not a zombie (whose parent was killed: init reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def _wait_for_keys(store: Path, count: int) -> None:
    deadline = time.time() + 60
    while time.time() < deadline and len(list(store.glob("keys/*/*.json"))) < count:
        time.sleep(0.05)


@pytest.mark.parametrize("timeout", ["", "timeout=120"])
def test_sigkill_on_the_process_backend_keeps_finished_steps_and_leaves_no_step_running(
        tmp_path: Path, timeout: str) -> None:
    pids = tmp_path / "pids"
    slow = SLOW_CHAIN.replace("SLEEP", "60").replace("@fk.step\ndef slow", f"@fk.step({timeout})\ndef slow")
    slow = slow.replace("    time.sleep(60)", f"    open({str(pids)!r}, 'w').write(str(__import__('os').getpid()))\n"
                                             "    time.sleep(60)")
    (tmp_path / "interrupted.py").write_text(slow)
    store = tmp_path / "store"
    proc = _flowkit(["run", "interrupted.py", "--backend", "process", "--store", str(store)], tmp_path)
    _wait_for_keys(store, 2)
    deadline = time.time() + 30
    while time.time() < deadline and not pids.exists():
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    step_pid = int(pids.read_text())
    deadline = time.time() + 10
    while time.time() < deadline and _alive(step_pid):
        time.sleep(0.05)
    assert not _alive(step_pid)  # the step's process died with the run
    assert not [p for p in store.rglob("*") if ".tmp-" in p.name]
    (tmp_path / "interrupted.py").write_text(SLOW_CHAIN.replace("SLEEP", "0"))
    done = _flowkit(["run", "interrupted.py", "--backend", "process", "--store", str(store), "--json"], tmp_path)
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    assert {k: v["status"] for k, v in json.loads(out)["steps"].items()} == {
        "first": "cached", "second": "cached", "slow": "ran"}


def _default_sigint() -> None:
    """In the child before exec: Ctrl-C as a terminal's foreground job gets it. A test run started in
    the background (``pytest &``) inherits SIGINT ignored, and Python then never raises
    KeyboardInterrupt; the test must not depend on that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctrl_c_stops_the_run_and_marks_it_cancelled(tmp_path: Path, backend: str) -> None:
    (tmp_path / "interrupted.py").write_text(SLOW_CHAIN.replace("SLEEP", "60"))
    store = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-m", "flowkit", "run", "interrupted.py", "--backend", backend,
                             "--store", str(store)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, preexec_fn=_default_sigint)
    try:
        _wait_for_keys(store, 2)
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert "cancelled" in err and "Traceback" not in err
    runs = open_store(store).index.runs()
    assert runs[0]["status"] == "cancelled"
    nodes = {n["node"]: n["status"] for n in open_store(store).index.nodes(runs[0]["run_id"])}
    assert nodes == {"first": "ran", "second": "ran"}


def test_the_ctrl_c_test_passes_when_pytest_starts_with_sigint_ignored() -> None:
    """``pytest &`` from a script starts with SIGINT ignored; the Ctrl-C test must pass anyway."""
    pytest_bin = Path(sys.executable).with_name("pytest")
    runner = [str(pytest_bin)] if pytest_bin.exists() else [sys.executable, "-m", "pytest"]
    proc = subprocess.run(
        [*runner, "-q", "-p", "no:cacheprovider", f"{__file__}::test_ctrl_c_stops_the_run_and_marks_it_cancelled"],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=100,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "2 passed" in proc.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_runs_on_one_store_all_succeed(tmp_path: Path, backend: str) -> None:
    (tmp_path / "fan.py").write_text(textwrap.dedent('''
        import flowkit as fk

        @fk.step
        def square(i: int, k: int) -> int:
            return (i + k) ** 2

        @fk.step
        def total(*xs: int) -> int:
            return sum(xs)

        @fk.flow
        def fan(k: int = 0):
            return total(*[square(i, k) for i in range(12)])
    '''))
    store = tmp_path / "store"
    procs = [_flowkit(["run", "fan.py", "--backend", backend, "--workers", "2", "--store", str(store),
                       "-p", f"k={i % 2}"], tmp_path) for i in range(4)]
    results = [(p.wait(timeout=180), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in results), results
    runs = open_store(store).index.runs()
    assert len(runs) == 4 and {r["status"] for r in runs} == {"succeeded"}
    totals = {open_store(store).load(n["output"]) for r in runs
              for n in open_store(store).index.nodes(r["run_id"]) if n["node"] == "total"}
    assert totals == {sum(i * i for i in range(12)), sum((i + 1) ** 2 for i in range(12))}

class _Terminal:
    """A stream that says it is a terminal, keeping what was drawn."""

    def __init__(self) -> None:
        self.text = ""

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def test_progress_shows_done_total_cached_and_running_on_a_terminal_only() -> None:
    from flowkit.backends.runners.progress import Progress

    term = _Terminal()
    progress = Progress(3, stream=term)
    progress.start("load")
    progress.finish("load", "cached")
    progress.start("train")
    progress.start("train-2")
    assert term.text.endswith("[1/3] 1 cached, 0 failed | running: train, train-2")
    progress.finish("train", "failed")
    progress.close()
    assert "[2/3] 1 cached, 1 failed | running: train-2" in term.text
    quiet = io.StringIO()
    silent = Progress(3, stream=quiet)
    silent.start("load")
    silent.close()
    assert quiet.getvalue() == ""


@pytest.mark.parametrize("backend", BACKENDS)
def test_history_is_current_while_a_long_step_runs(tmp_path: Path, backend: str) -> None:
    (tmp_path / "long.py").write_text(SLOW_CHAIN.replace("SLEEP", "60"))
    store = tmp_path / "store"
    proc = _flowkit(["run", "long.py", "--backend", backend, "--store", str(store)], tmp_path)
    try:
        deadline, seen = time.time() + 30, {}
        while time.time() < deadline and len(seen) < 2:
            runs = open_store(store, create=False).index.runs()
            seen = {n["node"]: n["status"] for n in open_store(store, create=False).index.nodes(runs[0]["run_id"])} \
                if runs else {}
            time.sleep(0.2)
        assert seen == {"first": "ran", "second": "ran"}  # recorded while `slow` still sleeps
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
