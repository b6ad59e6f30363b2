"""What re-runs and what is a cache hit, and what the plan predicts, with its reasons."""

from __future__ import annotations

import pytest

PIPELINE = '''
import flowkit as fk

CALLS = []


def normalize(rows):
    return [r / 10 for r in rows]


@fk.step
def load(n_rows: int) -> list:
    CALLS.append("load")
    return list(range(n_rows))


@fk.step
def prepare(rows):
    CALLS.append("prepare")
    return normalize(rows)


@fk.step
def train(rows, lr: float = 0.1):
    CALLS.append("train")
    return round(sum(rows) * lr, 6)


@fk.step
def report(*scores):
    CALLS.append("report")
    return max(scores)


@fk.flow
def pipeline(n_rows: int = 5, lr: float = 0.1):
    rows = prepare(load(n_rows))
    return report(train(rows, lr=lr), train(rows, lr=0.5))
'''


def statuses(run) -> dict[str, str]:
    return {name: outcome.status for name, outcome in run.steps.items()}


def verdicts(plan) -> dict[str, str]:
    return {row.node: row.verdict for row in plan.rows}


def test_second_run_is_all_cached_and_gives_the_same_result(write_module, store) -> None:
    mod = write_module(PIPELINE)
    first = mod.pipeline.run(store=store)
    assert first.status == "succeeded" and set(statuses(first).values()) == {"ran"}
    assert verdicts(mod.pipeline.plan(store=store)) == dict.fromkeys(statuses(first), "cached")
    mod.CALLS.clear()
    second = mod.pipeline.run(store=store)
    assert set(statuses(second).values()) == {"cached"}
    assert mod.CALLS == []
    for name, step in second.steps.items():  # the same keys and digests as the run that made them
        assert (step.cache_key, step.output_digest) == (first.steps[name].cache_key, first.steps[name].output_digest)
        assert step.cache_key and len(step.output_digest) == 64 and step.duration >= 0
    assert second.result == first.result == 0.5


def test_plan_on_an_empty_store_says_no_entry_and_writes_nothing(write_module, store) -> None:
    mod = write_module(PIPELINE)
    plan = mod.pipeline.plan(store=store)
    assert [(r.node, r.verdict, r.reason) for r in plan.rows] == [
        ("load", "run", "no entry"),
        ("prepare", "after upstream", "waits for load"),
        ("train", "after upstream", "waits for prepare"),
        ("train-2", "after upstream", "waits for prepare"),
        ("report", "after upstream", "waits for train, train-2"),
    ]
    assert not store.exists()


def test_a_changed_parameter_reruns_only_the_nodes_it_reaches(write_module, store) -> None:
    mod = write_module(PIPELINE)
    mod.pipeline.run(store=store)
    plan = mod.pipeline.plan(store=store, lr=0.2)
    assert verdicts(plan) == {"load": "cached", "prepare": "cached", "train": "run", "train-2": "cached",
                              "report": "after upstream"}
    assert plan["train"].reason == "param changed: lr 0.1 -> 0.2"
    run = mod.pipeline.run(store=store, lr=0.2)
    assert statuses(run) == {"load": "cached", "prepare": "cached", "train": "ran", "train-2": "cached",
                             "report": "ran"}


def test_a_changed_helper_reruns_the_steps_that_call_it(write_module, store) -> None:
    mod = write_module(PIPELINE)
    mod.pipeline.run(store=store)
    mod = write_module(PIPELINE.replace("r / 10", "r / 100"))
    plan = mod.pipeline.plan(store=store)
    assert verdicts(plan)["load"] == "cached"
    assert plan["prepare"] == plan["prepare"].__class__("prepare", "run", "code changed: helper normalize()",
                                                        plan["prepare"].key)
    run = mod.pipeline.run(store=store)
    assert statuses(run) == {"load": "cached", "prepare": "ran", "train": "ran", "train-2": "ran", "report": "ran"}


def test_a_new_comment_or_docstring_reruns_nothing(write_module, store) -> None:
    mod = write_module(PIPELINE)
    mod.pipeline.run(store=store)
    edited = PIPELINE.replace("def normalize(rows):", 'def normalize(rows):\n    """Scale."""\n    # a comment')
    edited = edited.replace("return list(range(n_rows))", "return list(range(n_rows))  # why not")
    mod = write_module(edited)
    assert set(verdicts(mod.pipeline.plan(store=store)).values()) == {"cached"}
    assert set(statuses(mod.pipeline.run(store=store)).values()) == {"cached"}


def test_new_code_with_the_same_output_leaves_downstream_cached(write_module, store) -> None:
    mod = write_module(PIPELINE)
    mod.pipeline.run(store=store)
    mod = write_module(PIPELINE.replace("return list(range(n_rows))", "return [i for i in range(n_rows)]"))
    plan = mod.pipeline.plan(store=store)
    assert plan["load"].reason == "code changed: load()"
    assert plan["prepare"].verdict == "after upstream"
    run = mod.pipeline.run(store=store)
    assert statuses(run) == {"load": "ran", "prepare": "cached", "train": "cached", "train-2": "cached",
                             "report": "cached"}


def test_a_changed_upstream_output_is_reported_as_an_input_change(write_module, store) -> None:
    mod = write_module(PIPELINE)
    first = mod.pipeline.run(store=store)
    second = mod.pipeline.run(store=store, n_rows=6)
    assert statuses(second)["prepare"] == "ran"
    from flowkit.execution.explain import explain
    from flowkit.store import open_store

    report = explain(open_store(store), second.id, "prepare")
    assert report["previous_run"] == first.id
    assert report["changes"] == ["input changed: rows"]
    assert explain(open_store(store), second.id, "load")["changes"] == ["param changed: n_rows 5 -> 6"]


def test_force_reruns_everything_and_force_step_keeps_unchanged_downstream(write_module, store) -> None:
    mod = write_module(PIPELINE)
    mod.pipeline.run(store=store)
    assert set(statuses(mod.pipeline.run(store=store, force=True)).values()) == {"ran"}
    plan = mod.pipeline.plan(store=store, force_steps=["prepare"])
    assert (plan["prepare"].verdict, plan["prepare"].reason) == ("run", "forced")
    run = mod.pipeline.run(store=store, force_steps=["prepare"])
    assert statuses(run) == {"load": "cached", "prepare": "ran", "train": "cached", "train-2": "cached",
                             "report": "cached"}


def test_cache_false_always_runs(write_module, store) -> None:
    mod = write_module(PIPELINE.replace("@fk.step\ndef load", "@fk.step(cache=False)\ndef load"))
    mod.pipeline.run(store=store)
    plan = mod.pipeline.plan(store=store)
    assert (plan["load"].verdict, plan["load"].reason) == ("run", "cache disabled")
    run = mod.pipeline.run(store=store)
    assert statuses(run)["load"] == "ran" and statuses(run)["prepare"] == "cached"


def test_version_and_image_and_env_are_part_of_the_key(write_module, store) -> None:
    mod = write_module(PIPELINE)
    mod.pipeline.run(store=store)
    for option, reason in (('version="2"', "version changed: None -> 2"), ('image="python:3.12"', "image changed"),
                           ('env={"A": "1"}', "env changed")):
        changed = write_module(PIPELINE.replace("@fk.step\ndef load", f"@fk.step({option})\ndef load"))
        assert changed.pipeline.plan(store=store)["load"].reason == reason


def test_a_value_that_cannot_be_fingerprinted_runs_uncached_with_the_reason(write_module, store) -> None:
    mod = write_module('''
import threading
import flowkit as fk

@fk.step
def use(lock) -> int:
    return 1

@fk.flow
def locked():
    return use(threading.Lock())
''')
    plan = mod.locked.plan(store=store)
    assert plan["use"].verdict == "run" and plan["use"].reason.startswith("unstable input:")
    assert "lock" in plan["use"].reason
    assert statuses(mod.locked.run(store=store)) == {"use": "ran"}
    assert statuses(mod.locked.run(store=store)) == {"use": "ran"}


def test_metrics_and_params_are_recorded_and_kept_on_cache_hits(write_module, store) -> None:
    mod = write_module('''
import flowkit as fk

@fk.step
def fit(lr: float) -> float:
    fk.log_param("optimizer", "sgd")
    for epoch in range(3):
        fk.log_metric("loss", 1.0 / (epoch + 1), step=epoch)
    fk.log_metric("accuracy", 0.9)
    return 0.9

@fk.flow
def metered(lr: float = 0.1):
    return fit(lr)
''')
    from flowkit.store import open_store

    for _ in range(2):
        run = mod.metered.run(store=store)
        index = open_store(store).index
        metrics = [(m["node"], m["name"], m["value"], m["step"]) for m in index.metrics(run.id)]
        assert metrics == [("fit", "loss", 1.0, 0), ("fit", "loss", 0.5, 1), ("fit", "loss", 1 / 3, 2),
                           ("fit", "accuracy", 0.9, None)]
        assert index.logged_params(run.id) == [{"node": "fit", "name": "optimizer", "value": "sgd"}]
    assert statuses(run) == {"fit": "cached"}


def test_a_failing_step_fails_the_run_skips_its_downstream_and_finishes_other_branches(write_module, store) -> None:
    mod = write_module('''
import flowkit as fk

@fk.step
def boom(x: int) -> int:
    raise ValueError(f"bad value {x}")

@fk.step
def fine(x: int) -> int:
    return x

@fk.step
def after(x: int) -> int:
    return x

@fk.flow
def partial():
    return after(boom(1)), fine(2)
''')
    run = mod.partial.run(store=store)
    assert run.status == "failed"
    assert statuses(run) == {"boom": "failed", "after": "skipped", "fine": "ran"}
    assert run.steps["boom"].error == "ValueError: bad value 1"
    assert 'raise ValueError(f"bad value {x}")' in run.steps["boom"].traceback


@pytest.mark.parametrize("retries, succeeds", [(2, True), (1, False)])
def test_retries_rerun_a_failing_step(write_module, store, retries: int, succeeds: bool) -> None:
    mod = write_module(f'''
import flowkit as fk

ATTEMPTS = []

@fk.step(retries={retries})
def flaky() -> int:
    ATTEMPTS.append(1)
    if len(ATTEMPTS) < 3:
        raise RuntimeError("not yet")
    return len(ATTEMPTS)

@fk.flow
def shaky():
    return flaky()
''')
    run = mod.shaky.run(store=store)
    assert run.status == ("succeeded" if succeeds else "failed")
    assert run.steps["flaky"].attempts == retries + 1
