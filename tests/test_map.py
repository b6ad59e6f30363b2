"""Run-time fan-out (``step.map``, issue #10): items keyed by content, per-item failure and
resume, chained maps, the plan row, and clear errors; on the local and process backends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import flowkit as fk
from flowkit import registry
from flowkit.backends.base import CompileOptions
from flowkit.errors import FlowDefinitionError

BACKENDS = ["local", "process"]

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
def over_param(xs: list = [1, 2, 3]):
    return total(square.map(xs, k=2))

@fk.flow
def over_output(n: int = 3):
    return square.map(split(n))

@fk.flow
def chained(xs: list = [1, 2, 3]):
    return total(inc.map(square.map(xs)))

@fk.flow
def failing(xs: list = [1, 2, 3, 4], flag: str = ""):
    return total(fragile.map(xs, flag=flag))

@fk.flow
def tolerant(xs: list = [1, 2, 3, 4], flag: str = ""):
    return total(fragile.options(min_success_ratio=0.75).map(xs, flag=flag))

@fk.flow
def not_a_list(n: int = 3):
    return square.map(split(n)[0])
'''


def ran(run, prefix: str) -> list[str]:
    """The item nodes of map ``prefix`` that ran (not cached) in ``run``, sorted (workers finish in any order)."""
    return sorted(name for name, o in run.steps.items() if name.startswith(prefix + "[") and o.status == "ran")


@pytest.fixture
def flows(write_module):
    return write_module(FLOWS, name="mapflows")


@pytest.mark.parametrize("backend", BACKENDS)
def test_inserting_an_item_in_the_middle_runs_only_that_item(flows, store: Path, backend: str) -> None:
    first = flows.over_param.run(xs=[1, 2, 4, 5], backend=backend, store=store)
    assert first.status == "succeeded" and first.result == 2 * (1 + 4 + 16 + 25)
    assert ran(first, "square") == ["square[0]", "square[1]", "square[2]", "square[3]"]
    second = flows.over_param.run(xs=[1, 2, 3, 4, 5], backend=backend, store=store)
    assert second.result == 2 * (1 + 4 + 9 + 16 + 25)
    assert ran(second, "square") == ["square[2]"]  # the new item; the ones after it moved but are cached
    assert second.steps["square[3]"].cache_key == first.steps["square[2]"].cache_key
    assert second.steps["total"].status == "ran"


@pytest.mark.parametrize("backend", BACKENDS)
def test_map_over_an_upstream_output_keeps_input_order_and_caches(flows, store: Path, backend: str) -> None:
    run = flows.over_output.run(n=4, backend=backend, store=store)
    assert run.result == [0, 100, 400, 900]
    assert run.output("square[3]") == 900
    again = flows.over_output.run(n=4, backend=backend, store=store)
    assert {o.status for o in again.steps.values()} == {"cached"}
    assert again.steps["square"].output_digest == run.steps["square"].output_digest


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_chained_map_goes_item_by_item_and_reruns_only_the_new_chain(flows, store: Path, backend: str) -> None:
    first = flows.chained.run(xs=[1, 2, 3], backend=backend, store=store)
    assert first.result == (1 + 1) + (4 + 1) + (9 + 1)
    second = flows.chained.run(xs=[1, 7, 2, 3], backend=backend, store=store)
    assert second.result == first.result + 50
    assert ran(second, "square") == ["square[1]"] and ran(second, "inc") == ["inc[1]"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failing_item_fails_the_map_and_a_resubmit_runs_only_it(flows, store: Path, tmp_path: Path,
                                                                   backend: str) -> None:
    flag = tmp_path / "broken"
    flag.write_text("")
    failed = flows.failing.run(flag=str(flag), backend=backend, store=store)
    assert failed.status == "failed"
    assert failed.steps["fragile[1]"].status == "failed" and "item 2 is bad" in failed.steps["fragile[1]"].error
    assert [failed.steps[f"fragile[{i}]"].status for i in (0, 2, 3)] == ["ran"] * 3
    assert failed.steps["fragile"].status == "failed" and "fragile[1]" in failed.steps["fragile"].error
    assert failed.steps["total"].status == "skipped"
    flag.unlink()
    resumed = flows.failing.run(flag=str(flag), backend=backend, store=store)
    assert resumed.status == "succeeded" and resumed.result == 1000
    assert ran(resumed, "fragile") == ["fragile[1]"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tolerated_failure_gives_downstream_the_items_that_succeeded(flows, store: Path, tmp_path: Path,
                                                                       backend: str) -> None:
    flag = tmp_path / "broken"
    flag.write_text("")
    run = flows.tolerant.run(flag=str(flag), backend=backend, store=store)
    assert run.status == "succeeded"
    assert run.steps["fragile[1]"].status == "failed"  # history says which item failed
    assert run.output("fragile") == [100, 300, 400] and run.result == 800
    below = flows.tolerant.run(xs=[2, 2, 5], flag=str(flag), backend=backend, store=store)
    assert below.status == "failed" and "min_success_ratio 0.75" in below.steps["fragile"].error


def test_max_parallel_bounds_the_items_out_at_once(write_module, store: Path, tmp_path: Path) -> None:
    mod = write_module(f'''
import json, os, time
import flowkit as fk

@fk.step
def stamp(i: int) -> int:
    start = time.time()
    time.sleep(0.2)
    with open(os.path.join({str(tmp_path)!r}, f"{{i}}.json"), "w") as out:
        json.dump([start, time.time()], out)
    return i

@fk.flow
def one_at_a_time(xs: list = [1, 2, 3]):
    return stamp.options(max_parallel=1).map(xs)
''', name="mapparallel")
    run = mod.one_at_a_time.run(backend="process", workers=3, store=store)
    assert run.result == [1, 2, 3]
    spans = sorted(json.loads((tmp_path / f"{i}.json").read_text()) for i in (1, 2, 3))
    assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:]))  # never two at once


def test_the_plan_shows_one_row_per_map(flows, store: Path) -> None:
    assert flows.over_output.plan(n=3, store=store)["square"].verdict == "after upstream"
    flows.over_param.run(xs=[1, 2, 3], store=store)
    row = flows.over_param.plan(xs=[1, 2, 9, 3], store=store)["square"]
    assert (row.verdict, row.reason) == ("run", "1 of 4 items to run, 3 cached")
    plan = flows.over_param.plan(xs=[1, 2, 3], store=store)
    assert plan["square"].verdict == "cached" and plan["total"].verdict == "cached"
    assert [row.node for row in plan.rows] == ["square", "total"]
    flows.over_output.run(n=2, store=store)
    assert flows.over_output.plan(n=2, store=store)["square"].reason == "all 2 items cached"


def test_a_map_over_something_not_a_list_names_the_step_and_the_type(flows, store: Path) -> None:
    run = flows.not_a_list.run(store=store)
    assert run.status == "failed"
    error = run.steps["square"].error
    assert "'square'" in error and "needs a list" in error and "is a int" in error


def test_map_over_a_literal_list_says_to_use_a_loop_or_a_parameter(write_module) -> None:
    mod = write_module('''
import flowkit as fk

@fk.step
def one(x: int) -> int:
    return x

@fk.flow
def literal():
    return one.map([1, 2, 3])
''', name="mapliteral")
    with pytest.raises(FlowDefinitionError, match="list written in the flow body") as info:
        mod.literal.graph
    assert "loop" in str(info.value) and "parameter" in str(info.value)


def test_outside_a_flow_map_is_a_plain_map(flows) -> None:
    assert flows.square.map([1, 2, 3], k=3) == [3, 12, 27]


def test_map_options_are_checked_where_the_step_is_made() -> None:
    @fk.step
    def one(x: int) -> int:
        return x

    with pytest.raises(FlowDefinitionError, match="min_success_ratio"):
        one.options(min_success_ratio=1.5)
    with pytest.raises(FlowDefinitionError, match="max_parallel"):
        one.options(max_parallel=0)


@pytest.mark.parametrize("target", ["airflow", "argo", "shell"])
def test_every_target_compiles_a_map_natively_and_deterministically(flows, tmp_path: Path, target: str) -> None:
    options = CompileOptions(flow_ref="mapflows.py:over_param", source="mapflows.py:over_param",
                             workdir=str(tmp_path), store=f"file://{tmp_path}/store", image="python:3.11-slim")
    first = registry.compiler(target).compile(flows.over_param, options)
    again = registry.compiler(target).compile(flows.over_param, options)
    assert [a.content for a in first] == [a.content for a in again]
    text = "".join(a.content for a in first)
    assert "--items" in text and "--item" in text  # the items are listed, then each one runs
