"""What a step printed, what it gave and where it came from: ``flowkit logs``, ``output`` and
``lineage``, read from the store alone."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowkit.store import open_store

PRINTING = '''
import sys
import time
import flowkit as fk

@fk.step
def talk(name: str) -> str:
    print("hello", name)
    print("careful", file=sys.stderr)
    return name.upper()

@fk.step
def quiet(text: str) -> str:
    return text + "!"

@fk.step(timeout=30)
def forked(text: str) -> str:
    print("from the child that a timeout can kill")
    return text

@fk.flow
def printing(name: str = "Ada"):
    return forked(quiet(talk(name)))
'''

FAILING = '''
import flowkit as fk

@fk.step(retries=1)
def flaky() -> int:
    print("trying")
    raise ValueError("no luck")

@fk.flow
def failing():
    return flaky()
'''

VALUES = '''
import numpy as np
import pandas as pd
import flowkit as fk

@fk.step
def frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})

@fk.step
def array() -> np.ndarray:
    return np.arange(12, dtype=np.int64).reshape(3, 4)

@fk.step
def raw() -> bytes:
    return bytes(range(256))

@fk.step
def summary(df: pd.DataFrame, arr: np.ndarray, rate: float) -> dict:
    return {"rows": len(df), "total": int(arr.sum()), "rate": rate}

@fk.flow
def values(rate: float = 0.5):
    df = frame()
    return summary(df, array(), rate), raw()
'''


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowkit", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("backend", ["local", "process"])
def test_what_steps_print_is_shown_live_and_kept_in_the_store(tmp_path: Path, backend: str) -> None:
    (tmp_path / "printing.py").write_text(PRINTING)
    run = cli("run", "printing.py", "--store", "s", "--backend", backend, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "hello Ada" in run.stdout and "careful" in run.stderr  # live, on the streams they went to
    logs = cli("logs", "last", "talk", "--store", "s", cwd=tmp_path)
    assert logs.returncode == 0 and logs.stdout == "hello Ada\ncareful\n"
    assert cli("logs", "last", "forked", "--store", "s", cwd=tmp_path).stdout == "from the child that a timeout can kill\n"
    silent = cli("logs", "last", "quiet", "--store", "s", cwd=tmp_path)
    assert silent.stdout == "" and "printed nothing" in silent.stderr
    run_id = open_store(tmp_path / "s", create=False).index.runs(limit=1)[0]["run_id"]
    assert sorted(p.name for p in (tmp_path / "s" / "runs" / run_id / "logs").iterdir()) == ["forked.log", "talk.log"]


def test_a_cached_steps_log_is_the_one_of_the_run_that_made_it(tmp_path: Path) -> None:
    (tmp_path / "printing.py").write_text(PRINTING)
    assert cli("run", "printing.py", "--store", "s", cwd=tmp_path).returncode == 0
    first = open_store(tmp_path / "s", create=False).index.runs(limit=1)[0]["run_id"]
    assert cli("run", "printing.py", "--store", "s", cwd=tmp_path).returncode == 0
    logs = cli("logs", "last", "talk", "--store", "s", cwd=tmp_path)
    assert logs.stdout == "hello Ada\ncareful\n" and f"log of run {first}" in logs.stderr


def test_a_failed_steps_log_has_each_attempt_and_the_users_traceback(tmp_path: Path) -> None:
    (tmp_path / "failing.py").write_text(FAILING)
    assert cli("run", "failing.py", "--store", "s", cwd=tmp_path).returncode == 1
    text = cli("logs", "last", "flaky", "--store", "s", cwd=tmp_path).stdout
    assert text.count("trying") == 2 and "--- attempt 2 of 2 ---" in text
    assert text.count("ValueError: no luck") == 2 and 'failing.py", line 7, in flaky' in text
    assert "flowkit/" not in text  # the user's frames only


def test_logs_follow_prints_until_the_step_ends(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text('''
import time
import flowkit as fk

@fk.step
def slow() -> int:
    for i in range(4):
        print("tick", i, flush=True)
        time.sleep(0.4)
    return 4

@fk.flow
def ticking():
    return slow()
''')
    runner = subprocess.Popen([sys.executable, "-m", "flowkit", "run", "slow.py", "--store", "s"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        live = tmp_path / "s" / "runs"
        deadline = time.monotonic() + 60
        while not list(live.glob("*/logs/slow.live")) and time.monotonic() < deadline:
            time.sleep(0.05)
        follow = cli("logs", "last", "slow", "--follow", "--store", "s", cwd=tmp_path)
    finally:
        assert runner.wait(timeout=60) == 0
    assert follow.returncode == 0 and follow.stdout == "".join(f"tick {i}\n" for i in range(4))


def test_output_shows_a_value_or_writes_it_in_the_format_its_type_calls_for(tmp_path: Path) -> None:
    (tmp_path / "values.py").write_text(VALUES)
    assert cli("run", "values.py", "--store", "s", cwd=tmp_path).returncode == 0
    shown = cli("output", "last", "summary", "--store", "s", cwd=tmp_path)
    assert shown.returncode == 0 and "{'rate': 0.5, 'rows': 3, 'total': 66}" in shown.stdout
    assert "builtins.dict" in shown.stdout
    for step, name in [("frame", "f.csv"), ("frame", "f.pkl"), ("array", "a.npy"), ("array", "a.csv"),
                       ("raw", "r.bin"), ("summary", "s.json")]:
        done = cli("output", "last", step, "--to", name, "--store", "s", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "f.csv", index_col=0), frame)
    pd.testing.assert_frame_equal(pickle.loads((tmp_path / "f.pkl").read_bytes()), frame)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.arange(12).reshape(3, 4))
    np.testing.assert_array_equal(np.loadtxt(tmp_path / "a.csv", delimiter=","), np.arange(12).reshape(3, 4))
    assert (tmp_path / "r.bin").read_bytes() == bytes(range(256))
    assert json.loads((tmp_path / "s.json").read_text()) == {"rate": 0.5, "rows": 3, "total": 66}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_output_refusals_are_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "values.py").write_text(VALUES)
    (tmp_path / "failing.py").write_text(FAILING)
    assert cli("run", "values.py", "--store", "s", cwd=tmp_path).returncode == 0
    wrong = cli("output", "last", "frame", "--to", "f.npy", "--store", "s", cwd=tmp_path)
    assert wrong.returncode == 2 and "a DataFrame cannot be written as .npy" in wrong.stderr
    assert "Traceback" not in wrong.stderr and not (tmp_path / "f.npy").exists()
    unknown = cli("output", "last", "nope", "--store", "s", cwd=tmp_path)
    assert unknown.returncode == 2 and "its steps: frame, array, summary, raw" in unknown.stderr
    assert cli("run", "failing.py", "--store", "s", cwd=tmp_path).returncode == 1
    failed = cli("output", "last", "flaky", "--store", "s", cwd=tmp_path)
    assert failed.returncode == 2 and "has no output: it failed (ValueError: no luck)" in failed.stderr


def test_lineage_names_the_steps_code_params_and_the_runs_that_used_an_output(tmp_path: Path) -> None:
    (tmp_path / "values.py").write_text(VALUES)
    assert cli("run", "values.py", "--store", "s", cwd=tmp_path).returncode == 0
    assert cli("run", "values.py", "--store", "s", "-p", "rate=0.7", cwd=tmp_path).returncode == 0
    report = json.loads(cli("lineage", "last:summary", "--json", "--store", "s", cwd=tmp_path).stdout)
    assert set(report["steps"]) == {"summary", "frame", "array"}
    summary = report["steps"]["summary"]
    assert summary["status"] == "ran" and summary["params"]["rate"]["value"] == "0.7"
    assert set(summary["inputs"]) == {"frame", "array"}
    assert report["steps"]["frame"]["status"] == "cached" and report["steps"]["frame"]["made_in"]
    frame_digest = summary["inputs"]["frame"]["digest"]
    used = json.loads(cli("lineage", frame_digest[:10], "--json", "--store", "s", cwd=tmp_path).stdout)
    roles = sorted((u["node"], u["role"]) for u in used["used_by"])
    assert roles == [("frame", "cached it"), ("frame", "made it"), ("summary", "used it as an input"),
                     ("summary", "used it as an input")]
    text = cli("lineage", "last:summary", "--store", "s", cwd=tmp_path).stdout
    assert "rate = 0.7  (parameter rate" in text and "<- frame" in text
    missing = cli("lineage", "abcdef123456", "--store", "s", cwd=tmp_path)
    assert missing.returncode == 2 and "no output with digest" in missing.stderr


def test_show_gives_a_failed_steps_error_and_the_users_traceback(tmp_path: Path) -> None:
    (tmp_path / "failing.py").write_text(FAILING)
    assert cli("run", "failing.py", "--store", "s", cwd=tmp_path).returncode == 1
    shown = cli("show", "last", "--store", "s", cwd=tmp_path).stdout
    assert "step 'flaky' failed: ValueError: no luck" in shown
    assert 'failing.py", line 7, in flaky' in shown and 'raise ValueError("no luck")' in shown


def test_flowkit_run_prints_a_plain_line_per_finished_step_into_a_log(tmp_path: Path) -> None:
    (tmp_path / "printing.py").write_text(PRINTING)
    first = cli("run", "printing.py", "--store", "s", cwd=tmp_path)  # stderr is a pipe here, as in CI
    lines = [line for line in first.stderr.splitlines() if line.startswith("[")]
    assert [line.split()[:3] for line in lines] == [["[1/3]", "ran", "talk"], ["[2/3]", "ran", "quiet"],
                                                    ["[3/3]", "ran", "forked"]]
    again = cli("run", "printing.py", "--store", "s", cwd=tmp_path)
    assert "[3/3] cached  forked" in again.stderr and "\r" not in again.stderr
