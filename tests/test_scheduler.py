"""The scheduler's state machine on its own: ready in call order, release on done, re-make a lost
input, and refuse misuse."""

from __future__ import annotations

import pytest

import flowkit as fk
from flowkit.backends.runners.scheduler import REMAKE_LIMIT, Schedule
from flowkit.execution.runtime import NodeOutcome


@fk.step
def source(x: int) -> int:
    return x


@fk.step
def combine(a: int, b: int) -> int:
    return a + b


@fk.flow
def diamond():
    left, right = source(1), source(2)
    return combine(left, right)


def _ran(name: str) -> NodeOutcome:
    return NodeOutcome(name, "ran")


def test_ready_nodes_leave_in_call_order_and_done_releases_downstream() -> None:
    schedule = Schedule(diamond.graph)
    assert [schedule.take(), schedule.take(), schedule.take()] == ["source", "source-2", None]
    schedule.done("source-2", _ran("source-2"))
    assert schedule.take() is None  # combine still waits for source
    schedule.done("source", _ran("source"))
    assert schedule.take() == "combine"
    schedule.done("combine", _ran("combine"))
    assert not schedule.unfinished() and list(schedule.outcomes) == ["source-2", "source", "combine"]


def test_a_lost_input_is_made_again_forced_then_the_node_runs() -> None:
    schedule = Schedule(diamond.graph)
    for name in ("source", "source-2"):
        assert schedule.take() == name
        schedule.done(name, _ran(name))
    assert schedule.take() == "combine"
    assert schedule.make_again("combine", "source")
    assert "source" not in schedule.outcomes and schedule.take() == "source" and schedule.forced("source")
    schedule.done("source", _ran("source"))
    assert not schedule.forced("source") and schedule.take() == "combine"


def test_make_again_gives_up_after_the_limit_and_misuse_is_refused() -> None:
    schedule = Schedule(diamond.graph)
    for name in ("source", "source-2"):
        schedule.take()
        schedule.done(name, _ran(name))
    for _ in range(REMAKE_LIMIT):
        assert schedule.take() == "combine"
        assert schedule.make_again("combine", "source")
        assert schedule.take() == "source"
        schedule.done("source", _ran("source"))
    assert schedule.take() == "combine"
    assert not schedule.make_again("combine", "source")  # the caller skips it instead
    schedule.done("combine", NodeOutcome("combine", "skipped"))
    with pytest.raises(RuntimeError, match="not running"):
        schedule.done("combine", _ran("combine"))
    with pytest.raises(RuntimeError, match="not running"):
        schedule.make_again("source", "source-2")


def test_a_failed_node_shows_as_failed_upstream() -> None:
    schedule = Schedule(diamond.graph)
    schedule.take()
    schedule.done("source", NodeOutcome("source", "failed"))
    schedule.take()
    schedule.done("source-2", _ran("source-2"))
    assert schedule.take() == "combine" and schedule.failed_upstream("combine") == ["source"]
