"""History you can query and compare (issue #9): ``explain`` names the part that changed and shows
it (a diff of a helper's normalized source, an input's digests, a parameter's values), ``runs
--status``, ``diff RUN_A RUN_B``, and the kept sources: written only for new code, kept by gc
while a kept run's key names them, checked by verify."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from flowkit.cli import main
from flowkit.store import open_store

PIPE = """
import flowkit as fk


def scale(x):
    # a comment: not part of the key
    return x * 2


@fk.step
def load(n: int) -> list:
    return list(range(n))


@fk.step
def offset(k: int) -> int:
    return k + 1


@fk.step
def train(rows: list, shift: int, lr: float = 0.1) -> float:
    score = (sum(scale(r) for r in rows) + shift) * lr
    fk.log_metric("score", score)
    return score


@fk.flow
def pipe(n: int = 3, k: int = 0, lr: float = 0.1):
    return train(load(n), offset(k), lr=lr)
"""

FAILING = """
import flowkit as fk


@fk.step
def boom(n: int) -> int:
    raise ValueError("no")


@fk.flow
def failing(n: int = 1):
    return boom(n)
"""


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def explain_json(capsys, store: Path, step: str) -> dict:
    code, out, err = cli(capsys, "explain", "last", step, "--store", str(store), "--json")
    assert code == 0, err
    return json.loads(out)


def source_files(store: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in (store / "sources").glob("*/*")}


def test_explain_names_exactly_the_changed_part_as_the_plan_did(write_module, capsys, store: Path) -> None:
    first = write_module(PIPE).pipe.run(store=store)

    # a helper: the plan and explain name it, and explain shows the changed line of its source
    mod = write_module(PIPE.replace("return x * 2", "return x * 3"))
    assert mod.pipe.plan(store=store)["train"].reason == "code changed: helper scale()"
    helper = mod.pipe.run(store=store)
    assert helper.steps["train"].status == "ran" and helper.steps["load"].status == "cached"
    report = explain_json(capsys, store, "train")
    assert report["previous_run"] == first.id and report["changes"] == ["code changed: helper scale()"]
    [code] = report["details"]
    assert (code["part"], code["name"], code["kind"]) == ("code", "scale", "helper")
    diff_lines = code["diff"].splitlines()
    assert "-    return x * 2" in diff_lines and "+    return x * 3" in diff_lines
    assert not any("comment" in line for line in diff_lines)  # the normalized source: no comments
    text = cli(capsys, "explain", "last", "train", "--store", str(store))[1]
    assert "  - code changed: helper scale()" in text and "-    return x * 2" in text and "+    return x * 3" in text

    # a parameter: old -> new value, nothing else
    assert mod.pipe.plan(store=store, lr=0.2)["train"].reason == "param changed: lr 0.1 -> 0.2"
    mod.pipe.run(store=store, lr=0.2)
    report = explain_json(capsys, store, "train")
    assert report["changes"] == ["param changed: lr 0.1 -> 0.2"]
    [param] = report["details"]
    assert (param["name"], param["old_value"], param["new_value"]) == ("lr", "0.1", "0.2")

    # an input: the plan waits for the upstream step; explain gives its old and new output digests
    plan = mod.pipe.plan(store=store, lr=0.2, k=1)
    assert (plan["train"].verdict, plan["train"].reason) == ("after upstream", "waits for offset")
    assert plan["offset"].reason == "param changed: k 0 -> 1"
    before = mod.pipe.run(store=store, lr=0.2)  # all cached: the record explain compares with
    after = mod.pipe.run(store=store, lr=0.2, k=1)
    report = explain_json(capsys, store, "train")
    assert report["changes"] == ["input changed: shift"]
    [arg] = report["details"]
    assert (arg["part"], arg["name"], arg["source"]) == ("input", "shift", "offset")
    assert (arg["old"], arg["new"]) == (before.steps["offset"].output_digest, after.steps["offset"].output_digest)
    text = cli(capsys, "explain", "last", "train", "--store", str(store))[1]
    assert f"shift: {arg['old'][:12]} -> {arg['new'][:12]}, output of step 'offset'" in text


def test_explain_of_a_source_not_kept_says_so(write_module, capsys, store: Path) -> None:
    write_module(PIPE).pipe.run(store=store)
    for path in (store / "sources").glob("*/*"):
        path.write_text(path.read_text().replace("x * 2", "x * 5"))  # damaged: its check no longer matches
    write_module(PIPE.replace("return x * 2", "return x * 3")).pipe.run(store=store)
    report = explain_json(capsys, store, "train")
    assert report["details"][0]["diff"] is None  # never the damaged text
    assert "its source was not kept" in report["text"] and "x * 5" not in report["text"]
    code, out, _ = cli(capsys, "cache", "verify", "--store", str(store), "--json")
    problems = {p["path"] for p in json.loads(out)["problems"]}
    assert code == 1 and problems and all(p.startswith("sources/") for p in problems)


def test_runs_filters_by_status_and_flow_and_the_limit_counts_matching_runs(write_module, capsys,
                                                                            store: Path) -> None:
    from flowkit.store import liveness
    from flowkit.store.records import RunHeader

    ok = write_module(PIPE)
    bad = write_module(FAILING, "failing_flow")
    ok.pipe.run(store=store)
    ok.pipe.run(store=store, n=4)
    assert bad.failing.run(store=store).status == "failed"
    assert bad.failing.run(store=store, n=2).status == "failed"
    gone = 2**22 + 12345  # above Linux's largest pid: a run whose process is gone
    open_store(store).write_run_start("r-killed", RunHeader("pipe", {}, ["load"], "local", time.time(),
                                                            pid=gone, host=liveness.this_process()[1]))

    def runs(*args: str) -> list[dict]:
        code, out, err = cli(capsys, "runs", *args, "--store", str(store), "--json")
        assert code == 0, err
        return json.loads(out)

    assert [(r["flow"], r["status"]) for r in runs("--status", "failed")] == [("failing", "failed")] * 2
    # the two latest runs are not succeeded ones: --limit still gives two that are
    assert [(r["flow"], r["status"]) for r in runs("--status", "succeeded", "--limit", "2")] == [("pipe", "succeeded")] * 2
    assert [r["run_id"] for r in runs("--status", "interrupted")] == ["r-killed"]
    assert [r["status"] for r in runs("--flow", "pipe")] == ["interrupted", "succeeded", "succeeded"]
    assert runs("--flow", "failing", "--status", "succeeded") == []
    assert cli(capsys, "runs", "--status", "cancelled", "--store", str(store))[1].strip() == "no runs match"
    code, _, err = cli(capsys, "runs", "--limit", "0", "--store", str(store))
    assert code == 2 and err.startswith("error: runs: --limit must be 1 or more")


def test_diff_gives_params_metrics_steps_and_why(write_module, capsys, store: Path) -> None:
    mod = write_module(PIPE)
    a = mod.pipe.run(store=store)
    b = mod.pipe.run(store=store, lr=0.2)
    code, out, err = cli(capsys, "diff", a.id, b.id, "--store", str(store), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert set(report) == {"a", "b", "params", "metrics", "only_in_a", "only_in_b", "steps", "text"}
    assert (report["a"]["run_id"], report["b"]["run_id"], report["b"]["status"]) == (a.id, b.id, "succeeded")
    assert report["params"] == [{"name": "lr", "a": 0.1, "b": 0.2}]
    assert report["metrics"] == [{"step": "train", "name": "score", "a": pytest.approx(0.7), "b": pytest.approx(1.4),
                                  "changed": True}]
    assert report["only_in_a"] == report["only_in_b"] == []
    [train] = report["steps"]  # load and offset: the same keys and outputs
    assert train["step"] == "train" and train["why"] == ["param changed: lr 0.1 -> 0.2"]
    assert train["key_changed"] and train["output_changed"]
    assert (train["output_a"], train["output_b"]) == (a.steps["train"].output_digest, b.steps["train"].output_digest)

    text = cli(capsys, "diff", a.id, "last", "--store", str(store))[1]
    assert "  lr: 0.1 -> 0.2" in text and "  train score: 0.7 -> 1.4" in text
    assert "    - param changed: lr 0.1 -> 0.2" in text

    grown = write_module(PIPE.replace("return train(load(n), offset(k), lr=lr)",
                                      "out = train(load(n), offset(k), lr=lr)\n    load(7)\n    return out"))
    c = grown.pipe.run(store=store, lr=0.2)
    report = json.loads(cli(capsys, "diff", b.id, c.id, "--store", str(store), "--json")[1])
    assert report["only_in_b"] == ["load-2"] and report["steps"] == [] and report["params"] == []
    assert report["metrics"][0]["changed"] is False and "steps only in b: load-2" in report["text"]
    code, _, err = cli(capsys, "diff", a.id, "nope", "--store", str(store))
    assert code == 2 and "no run 'nope'" in err


def test_sources_are_written_for_new_code_only(write_module, capsys, store: Path) -> None:
    mod = write_module(PIPE)
    mod.pipe.run(store=store)
    kept = source_files(store)
    assert len(kept) == 4  # load, offset, train and the helper scale
    assert mod.pipe.run(store=store).steps["train"].status == "cached"
    assert source_files(store) == kept  # a fully cached run writes nothing there
    assert mod.pipe.run(store=store, lr=0.3).steps["train"].status == "ran"
    assert source_files(store) == kept  # a step that ran with unchanged code: nothing new either
    write_module(PIPE.replace("return x * 2", "return x * 3")).pipe.run(store=store)
    changed = source_files(store)
    assert len(changed) == 5 and all(changed[name] == mtime for name, mtime in kept.items())
    assert not [p for p in (store / "sources").rglob("*") if ".tmp-" in p.name]


def test_gc_keeps_the_sources_kept_runs_name_and_verify_checks_them(write_module, capsys, store: Path) -> None:
    write_module(PIPE).pipe.run(store=store)
    old = source_files(store)
    last = write_module(PIPE.replace("return x * 2", "return x * 3")).pipe.run(store=store)
    code, out, err = cli(capsys, "cache", "gc", "--keep", "1", "--grace", "0", "--store", str(store), "--json")
    assert code == 0, err
    assert json.loads(out)["sources_removed"] == 1  # the old scale(): only the dropped run's key named it
    s = open_store(store)
    named = {digest for record in s.records.key_records() for digest in record.parts.code.parts.values()}
    assert {name.removesuffix(".json") for name in source_files(store)} == named
    assert len(set(old) - set(source_files(store))) == 1
    for name in last.steps:
        parts = s.parts_of(s.read_node(last.id, name))
        assert all(s.sources.get(digest) for digest in parts.code.parts.values())
    assert cli(capsys, "cache", "verify", "--store", str(store))[0] == 0
    assert json.loads(cli(capsys, "cache", "gc", "--grace", "0", "--store", str(store), "--json")[1]).get(
        "sources_removed") is None  # nothing more to remove
