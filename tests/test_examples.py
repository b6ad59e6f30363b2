"""The examples users copy from run, and re-run as all cache hits."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowkit.loading import load_flow

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_ml_example_trains_picks_the_best_and_reruns_from_cache(store: Path) -> None:
    pytest.importorskip("sklearn")
    flow = load_flow(str(EXAMPLES / "ml" / "flow.py"))
    first = flow.run(store=store)
    assert first.status == "succeeded"
    assert set(first.steps) == {"load", "prepare", "train", "train-2", "train-3", "evaluate", "evaluate-2",
                                "evaluate-3", "pick_best"}
    best = first.result
    assert best["C"] in (0.1, 1.0, 10.0) and best["accuracy"] > 0.9
    second = flow.run(store=store)
    assert {s.status for s in second.steps.values()} == {"cached"}
    assert second.result == best


def test_hello_example_result(store: Path) -> None:
    flow = load_flow(str(EXAMPLES / "hello" / "flow.py"))
    assert flow.run(store=store, name="Ada").result == {"text": "HELLO, ADA!", "letters": 8}
