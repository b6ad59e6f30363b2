"""The run-step protocol of ``.map`` (issue #10), driven only through ``run-step`` processes in
one store and one run id, as a compiled target drives it: the upstream, ``--items`` (JSON on the
last line, and ``--items-to``), each ``--item N``, then the gather; a local run afterwards is all
cached with the same result."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowkit.loading import load_flow
from flowkit.store import open_store

FLOWS = '''
import os
import flowkit as fk

@fk.step
def split(n: int) -> list:
    return [i * 10 for i in range(n)]

@fk.step
def square(x: int, k: int = 1) -> int:
    return x * x * k

@fk.step
def inc(x: int) -> int:
    return x + 1

@fk.step
def total(xs: list) -> int:
    return sum(xs)

@fk.step
def fragile(x: int, flag: str = "") -> int:
    if x == 2 and os.path.exists(flag):
        raise ValueError(f"item {x} is bad")
    return x * 100

@fk.flow
def chained(n: int = 3):
    return total(inc.map(square.map(split(n), k=2)))

@fk.flow
def over_param(xs: list = [1, 2, 3]):
    return total(square.map(xs))

@fk.flow
def strict(xs: list = [1, 2, 3, 4], flag: str = ""):
    return total(fragile.map(xs, flag=flag))

@fk.flow
def tolerant(xs: list = [1, 2, 3, 4], flag: str = ""):
    return total(fragile.options(min_success_ratio=0.75).map(xs, flag=flag))
'''


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    path = tmp_path / "mapsteps.py"
    path.write_text(textwrap.dedent(FLOWS))
    return path


class Steps:
    """``run-step`` calls of one flow in one run of one store."""

    def __init__(self, flows: Path, flow: str, store: Path, run_id: str, *params: str) -> None:
        self.ref, self.store, self.run_id = f"{flows}:{flow}", store, run_id
        self.params = [arg for param in params for arg in ("-p", param)]

    def __call__(self, step: str, *extra: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "flowkit", "run-step", f"--flow={self.ref}", f"--step={step}", "--store",
             str(self.store), "--run-id", self.run_id, *self.params, *extra],
            capture_output=True, text=True, cwd=self.store.parent)
        assert done.returncode == code, (step, extra, done.stdout, done.stderr)
        return done

    def items(self, step: str, *extra: str) -> list[int]:
        return json.loads(self(step, "--items", *extra).stdout.splitlines()[-1])

    def each(self, step: str) -> dict[int, str]:
        """Run every item of map ``step``; what run-step said each one did (ran or cached)."""
        said = {}
        for index in self.items(step):
            line = self(step, "--item", str(index)).stdout.strip()
            assert line.startswith(f"step '{step}[{index}]' ")
            said[index] = line.split()[2]
        return said


def recorded(store: Path, run_id: str, node: str):
    return open_store(store, create=False).read_node(run_id, node)


def test_a_chained_map_over_an_upstream_list_runs_step_by_step_and_a_local_run_is_cached(
        flows: Path, store: Path, tmp_path: Path) -> None:
    steps = Steps(flows, "chained", store, "r1", "n=3")
    steps("split")
    listed = steps("square", "--items", "--items-to", str(tmp_path / "out" / "items.json"))
    assert listed.stdout.splitlines()[-1] == "[0, 1, 2]"
    assert json.loads((tmp_path / "out" / "items.json").read_text()) == [0, 1, 2]
    assert not list((tmp_path / "out").glob(".*"))  # no temporary file left behind
    assert steps.each("square") == {0: "ran", 1: "ran", 2: "ran"}
    steps("square")
    assert steps.each("inc") == {0: "ran", 1: "ran", 2: "ran"}  # item N of inc reads square[N]
    steps("inc")
    steps("total")
    expected = sum(2 * (i * 10) ** 2 + 1 for i in range(3))
    assert recorded(store, "r1", "inc[2]").inputs == {"square[2]": recorded(store, "r1", "square[2]").output.digest}

    local = load_flow(f"{flows}:chained").run(n=3, store=store)
    assert local.result == expected
    assert {name: o.status for name, o in local.steps.items()} == {
        name: "cached" for name in ["split", "square[0]", "square[1]", "square[2]", "square",
                                    "inc[0]", "inc[1]", "inc[2]", "inc", "total"]}
    assert local.steps["inc"].output_digest == recorded(store, "r1", "inc").output.digest
    assert local.steps["total"].output_digest == recorded(store, "r1", "total").output.digest


def test_inserting_an_item_in_a_list_parameter_runs_only_that_item(flows: Path, store: Path) -> None:
    first = Steps(flows, "over_param", store, "r1", "xs=[1, 2, 4]")
    assert first.each("square") == {0: "ran", 1: "ran", 2: "ran"}
    first("square")
    first("total")
    second = Steps(flows, "over_param", store, "r2", "xs=[1, 2, 3, 4]")
    assert second.each("square") == {0: "cached", 1: "cached", 2: "ran", 3: "cached"}
    second("square")
    assert "ran" in second("total").stdout
    assert recorded(store, "r2", "square[3]").key == recorded(store, "r1", "square[2]").key
    local = load_flow(f"{flows}:over_param").run(xs=[1, 2, 3, 4], store=store)
    assert local.result == 1 + 4 + 9 + 16 and {o.status for o in local.steps.values()} == {"cached"}


def test_a_failing_item_fails_the_gather_below_the_ratio_and_not_above_it(flows: Path, store: Path,
                                                                          tmp_path: Path) -> None:
    flag = tmp_path / "broken"
    flag.write_text("")
    strict = Steps(flows, "strict", store, "r1", f"flag={flag}")
    for index in (0, 2, 3):
        strict("fragile", "--item", str(index))
    failed = strict("fragile", "--item", "1", code=1)
    assert "item 2 is bad" in failed.stderr
    gather = strict("fragile", code=1)
    assert "1 of 4 items failed (fragile[1])" in gather.stderr
    assert recorded(store, "r1", "fragile").status == "failed"
    strict("total", code=3)  # its upstream failed

    tolerant = Steps(flows, "tolerant", store, "r2", f"flag={flag}")
    for index in (0, 2, 3):
        assert tolerant("fragile", "--item", str(index)).stdout.split()[2] == "cached"
    tolerant("fragile", "--item", "1", code=1)
    tolerant("fragile")  # 3 of 4 succeeded: min_success_ratio 0.75 holds
    assert "ran" in tolerant("total").stdout
    assert load_flow(f"{flows}:tolerant").run(flag=str(flag), store=store).result == 100 + 300 + 400

    unfinished = Steps(flows, "tolerant", store, "r3", f"flag={flag}")
    unfinished("fragile", "--item", "0")
    unfinished("fragile", "--item", "1", code=1)
    short = unfinished("fragile", code=1)  # items 2 and 3 never ran: they count as failed
    assert "3 of 4 items failed (fragile[1], fragile[2], fragile[3])" in short.stderr
    assert "min_success_ratio 0.75 needs 3" in short.stderr


def test_usage_errors_and_a_missing_upstream_have_their_exit_codes(flows: Path, store: Path) -> None:
    steps = Steps(flows, "chained", store, "r1", "n=2")
    missing = steps("square", "--items", code=3)
    assert "upstream step 'split' has not run in run r1" in missing.stderr
    steps("square", "--item", "0", code=3)
    steps("split")
    assert steps.items("square") == [0, 1]
    out_of_range = steps("square", "--item", "2", code=2)
    assert "--item 2 is out of range: the map has 2 items in run r1" in out_of_range.stderr
    assert len(out_of_range.stderr.splitlines()) == 2 and "Traceback" not in out_of_range.stderr
    steps("square", "--item", "-1", code=2)
    assert "needs a .map step" in steps("split", "--item", "0", code=2).stderr
    assert "not one" in steps("total", "--items", code=2).stderr
    assert "add --items" in steps("square", "--items-to", "x.json", code=2).stderr
    steps("inc", "--items", code=3)  # the map it maps over has not gathered yet
