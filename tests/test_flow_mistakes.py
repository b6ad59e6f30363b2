"""Mistakes in a flow body that used to crash or leave a run 'running': an input indexed by a key
its upstream output lacks, a literal argument that holds itself."""

from __future__ import annotations

from pathlib import Path

from flowkit.cli import main


def test_an_input_indexed_by_a_missing_key_fails_that_step_by_name(write_module, store: Path, capsys) -> None:
    mod = write_module('''
    import flowkit as fk

    @fk.step
    def make() -> dict:
        return {"a": 1}

    @fk.step
    def use(value: int) -> int:
        return value

    @fk.step
    def other() -> int:
        return 2

    @fk.flow
    def lacking():
        return use(make()["nope"]), other()
    ''', name="lacking")
    assert main(["run", str(Path(mod.__file__)), "--store", str(store)]) == 1
    err = capsys.readouterr().err
    assert "step 'use' failed: step 'use': the output of step 'make'['nope'] does not exist: KeyError: 'nope'" in err
    assert "its keys: 'a'" in err and "Traceback" not in err
    run = mod.lacking.run(store=store)
    assert run.status == "failed" and run.steps["use"].status == "failed" and run.steps["other"].status == "cached"
    assert main(["runs", "--store", str(store), "--json"]) == 0
    assert '"status": "running"' not in capsys.readouterr().out


def test_a_literal_argument_that_holds_itself_runs_uncached_with_the_reason(write_module, store: Path) -> None:
    mod = write_module('''
    import flowkit as fk

    @fk.step
    def size(items: list) -> int:
        return len(items)

    @fk.flow
    def loop():
        items = [1, 2]
        items.append(items)
        return size(items)
    ''')
    row = mod.loop.plan(store=store)["size"]
    assert row.verdict == "run" and row.reason == "unstable input: self-referencing list cannot be fingerprinted"
    run = mod.loop.run(store=store)
    assert run.status == "succeeded" and run.result == 3
