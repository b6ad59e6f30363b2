"""``flowkit cache audit``: cached steps re-run in a scratch store; the ones whose output is not what
the cache holds are reported with what differed."""

from __future__ import annotations

from pathlib import Path

from flowkit.execution.audit import audit
from flowkit.store import open_store

FLOW = '''
import random
import time
import flowkit as fk

DATA = {data!r}

@fk.step
def steady(n: int) -> int:
    return n * 2

@fk.step
def dice(n: int) -> float:
    return random.random() + n

@fk.step
def clock() -> float:
    return time.time()

@fk.step
def undeclared(n: int) -> str:
    with open(DATA) as handle:          # a path, not fk.File: the content is not in the key
        return handle.read() * n

@fk.step
def after(value: int) -> int:
    return value + 1

@fk.flow
def audited(n: int = 2):
    return after(steady(n)), dice(n), clock(), undeclared(n)
'''


def test_audit_reports_what_is_not_deterministic_or_reads_what_is_not_in_its_key(write_module, store: Path,
                                                                                   tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("a")
    mod = write_module(FLOW.format(data=str(data)))
    assert mod.audited.run(store=store).status == "succeeded"
    data.write_text("b")
    report = audit(mod.audited, {"n": 2}, open_store(store))
    verdicts = {f.step: f.verdict for f in report.findings}
    assert report.cached == 5 and verdicts == {
        "steady": "same", "after": "same", "dice": "not deterministic", "clock": "not deterministic",
        "undeclared": "reads inputs not in its key"}
    undeclared = next(f for f in report.findings if f.step == "undeclared")
    assert undeclared.detail == "cached 'aa', re-run 'bb'"


def test_audit_samples_by_seed_and_writes_nothing_into_the_store(write_module, store: Path, tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("a")
    mod = write_module(FLOW.format(data=str(data)))
    mod.audited.run(store=store)
    before = sorted(p.relative_to(store) for p in Path(store).rglob("*") if "index.sqlite" not in p.name)
    first = [f.step for f in audit(mod.audited, {"n": 2}, open_store(store), sample=2, seed=7).findings]
    again = [f.step for f in audit(mod.audited, {"n": 2}, open_store(store), sample=2, seed=7).findings]
    assert len(first) == 2 and first == again
    assert sorted(p.relative_to(store) for p in Path(store).rglob("*") if "index.sqlite" not in p.name) == before


def test_audit_of_a_store_without_hits_audits_nothing(write_module, store: Path, tmp_path: Path) -> None:
    mod = write_module(FLOW.format(data=str(tmp_path / "none.txt")))
    report = audit(mod.audited, {"n": 2}, open_store(store, create=False))
    assert report.cached == 0 and report.findings == ()


def test_the_audit_command_reports_and_exits_1_when_a_step_differs(write_module, store: Path, tmp_path: Path,
                                                                   capsys) -> None:
    from flowkit.cli import main

    data = tmp_path / "data.txt"
    data.write_text("a")
    mod = write_module(FLOW.format(data=str(data)), name="audited_flow")
    flow_file = str(Path(mod.__file__))
    assert main(["cache", "audit", flow_file, "--store", str(store)]) == 0  # nothing cached yet
    assert "no cached step to audit" in capsys.readouterr().out
    assert main(["run", flow_file, "--store", str(store)]) == 0
    capsys.readouterr()
    assert main(["cache", "audit", flow_file, "-p", "n=2", "--store", str(store)]) == 1
    out = capsys.readouterr().out
    assert "dice" in out and "not deterministic" in out and "5 of 5 cached steps re-run twice, 2 not what" in out
    assert main(["cache", "audit", "--store", str(store)]) == 2
    assert "cache audit needs FLOW" in capsys.readouterr().err
    assert main(["cache", "ls", flow_file, "--store", str(store)]) == 2
