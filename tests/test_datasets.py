"""Data versioning (SPEC §12): flow parameters annotated ``fk.File`` / ``fk.Dir`` are keyed by
content, steps may return them (their bytes are kept in the store and restored for the steps
downstream, on any backend), and ``flowkit datasets`` lists each version over the runs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

import flowkit as fk
from flowkit.cli import main
from flowkit.errors import FlowDefinitionError, ParameterError
from flowkit.keys.values import file_digest, fingerprint
from flowkit.store import open_store
from flowkit.store import layout
from flowkit.store.datasets import datasets
from flowkit.store.gc import collect
from flowkit.store.records import DataInput, RunHeader
from flowkit.store.verify import verify

FLOWS = """
import flowkit as fk


@fk.step
def count_rows(data):
    return len(data.read_text().splitlines())


@fk.step
def write_report(n, out):
    with open(out, "w") as handle:
        handle.write(f"rows={n}\\n")
    return fk.File(out)


@fk.step
def read_report(report):
    return {"path": report.path, "text": report.read_text()}


@fk.flow
def csv_flow(data: fk.File = "data/in.csv", out: str = "report.txt"):
    return read_report(write_report(count_rows(data), out))


@fk.step
def names(images):
    return sorted(os.path.relpath(f.path, images.path) for f in images.files())


@fk.flow
def dir_flow(images: fk.Dir = "images"):
    return names(images)


@fk.step
def write_folder(n, out):
    os.makedirs(os.path.join(out, "empty"), exist_ok=True)
    for i in range(n):
        with open(os.path.join(out, f"part-{i}.txt"), "w") as handle:
            handle.write(str(i))
    return {"folder": fk.Dir(out), "parts": n}


@fk.step
def read_folder(folder):
    return {"path": folder.path, "parts": [f.read_text() for f in folder.files()],
            "empty": os.path.isdir(os.path.join(folder.path, "empty"))}


@fk.flow
def folder_flow(n: int = 2, out: str = "made"):
    made = write_folder(n, out)
    return read_folder(made["folder"])


@fk.step
def parity(n, out):
    with open(out, "w") as handle:
        handle.write(str(n % 2))
    return fk.File(out)


@fk.flow
def parity_flow(n: int = 1, out: str = "parity.txt"):
    return read_report(parity(n, out))


@fk.flow
def wraps_param(data: str = "x.csv"):
    return count_rows(fk.File(data))
"""


@pytest.fixture
def flows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_module: Callable[..., Any]) -> Any:
    """The flows above, imported from tmp_path, with tmp_path as the working folder and a CSV in it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.csv").write_text("a,b\n1,2\n")
    return write_module("import os\n" + FLOWS, "dataflows")


def statuses(run: Any) -> dict[str, str]:
    return {name: outcome.status for name, outcome in run.steps.items()}


# -- inputs --------------------------------------------------------------------------------------


def test_a_file_parameter_is_keyed_by_its_bytes_not_its_name_or_time(flows: Any, tmp_path: Path, store: Path) -> None:
    csv = tmp_path / "data" / "in.csv"
    first = flows.csv_flow.run(store=store)
    assert first.result["text"] == "rows=2\n" and statuses(first)["count_rows"] == "ran"
    assert flows.csv_flow.params[0].to_json() == {"name": "data", "type": "file", "required": False,
                                                  "default": "data/in.csv"}

    os.utime(csv, (1, 1))  # touched: same bytes
    assert statuses(flows.csv_flow.run(store=store)) == {"count_rows": "cached", "write_report": "cached",
                                                         "read_report": "cached"}
    moved = tmp_path / "elsewhere" / "renamed.csv"
    moved.parent.mkdir()
    shutil.move(csv, moved)  # moved and renamed: same bytes
    assert set(statuses(flows.csv_flow.run(store=store, data=str(moved))).values()) == {"cached"}

    moved.write_text("a,b\n1,2\n3,4\n")  # edited
    reason = flows.csv_flow.plan(store=store, data=str(moved))["count_rows"].reason
    assert reason.startswith("param changed: data (content ") and " -> " in reason  # same path text, new bytes
    edited = flows.csv_flow.run(store=store, data=moved)
    from flowkit.execution.explain import explain
    from flowkit.store import open_store

    assert explain(open_store(store, create=False), edited.id, "count_rows")["changes"] == [reason]  # as plan said
    assert statuses(edited)["count_rows"] == "ran" and edited.result["text"] == "rows=3\n"
    assert isinstance(edited.params["data"], fk.File) and edited.params["data"].path == str(moved)


def test_a_run_records_each_data_input_with_its_digest(flows: Any, tmp_path: Path, store: Path) -> None:
    run = flows.csv_flow.run(store=store)
    header = open_store(store).records.read_header(run.id)
    csv = str(tmp_path / "data" / "in.csv")
    assert header.params == {"data": csv, "out": "report.txt"}  # JSON: the path
    assert header.data == {"data": DataInput("file", csv, file_digest(csv))}
    assert RunHeader.from_json(header.to_json()) == header
    plain = RunHeader("f", {"n": 1}, ["a"], "local", 1.0)
    assert "data" not in plain.to_json()  # old records read and write the same bytes


def test_a_file_parameter_from_the_command_line_and_through_run_step(flows: Any, tmp_path: Path, store: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    flow_ref = f"{tmp_path / 'dataflows.py'}:csv_flow"
    numeric = tmp_path / "2024"  # a path that reads as JSON is still a path
    numeric.write_text("x\ny\nz\n")
    assert main(["run", flow_ref, "-p", "data=2024", "--store", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "succeeded"
    assert main(["run", flow_ref, "-p", "data=2024", "--store", str(store), "--json"]) == 0
    assert {s["status"] for s in json.loads(capsys.readouterr().out)["steps"].values()} == {"cached"}

    for step in ("count_rows", "write_report", "read_report"):
        if step == "read_report":
            os.remove(tmp_path / "report.txt")  # the downstream step gets it back from the store
        assert main(["run-step", "--flow", flow_ref, "--step", step, "--run-id", "r-1", "--store", str(store),
                     "-p", "data=data/in.csv"]) == 0, capsys.readouterr().err
    opened = open_store(store)
    assert opened.records.read_header("r-1").data["data"].path == str(tmp_path / "data" / "in.csv")
    result = opened.load(opened.read_node("r-1", "read_report").output)
    assert result["text"] == "rows=2\n" and result["path"].startswith(str(store / layout.FILES))


def test_a_dir_parameter_is_keyed_by_its_tree(flows: Any, tmp_path: Path, store: Path) -> None:
    images = tmp_path / "images"
    (images / "cats").mkdir(parents=True)
    (images / "cats" / "a.png").write_bytes(b"\x89PNG-a")
    first = flows.dir_flow.run(store=store)
    assert first.result == ["cats/a.png"] and flows.dir_flow.params[0].type == "dir"
    os.utime(images / "cats" / "a.png", (1, 1))
    assert statuses(flows.dir_flow.run(store=store)) == {"names": "cached"}
    shutil.copytree(images, tmp_path / "copy")
    assert statuses(flows.dir_flow.run(store=store, images="copy")) == {"names": "cached"}

    (images / ".hidden").write_text("counts too")
    assert statuses(flows.dir_flow.run(store=store)) == {"names": "ran"}
    (images / "cats" / "b.png").write_bytes(b"\x89PNG-b")
    again = flows.dir_flow.run(store=store)
    assert statuses(again) == {"names": "ran"} and again.result == [".hidden", "cats/a.png", "cats/b.png"]
    (images / "dogs").mkdir()  # an empty folder is part of the tree
    assert statuses(flows.dir_flow.run(store=store)) == {"names": "ran"}


def test_bad_data_parameters_are_clear_errors(flows: Any, tmp_path: Path, store: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ParameterError, match=r"flow 'csv_flow': parameter 'data': there is no file at .*nope\.csv"):
        flows.csv_flow.run(store=store, data="nope.csv")
    with pytest.raises(ParameterError, match=r"parameter 'data' expects a file \(fk\.File\), but .* is a folder"):
        flows.csv_flow.run(store=store, data=str(tmp_path / "data"))
    with pytest.raises(ParameterError, match=r"parameter 'images' expects a folder \(fk\.Dir\), but .* is a file"):
        flows.dir_flow.run(store=store, images="data/in.csv")
    with pytest.raises(FlowDefinitionError, match=r"fk\.File\(data\) in the flow body") as raised:
        flows.wraps_param.plan(store=store)
    assert "annotate the parameter instead (def wraps_param(data: fk.File = ...))" in str(raised.value)

    code = main(["run", f"{tmp_path / 'dataflows.py'}:csv_flow", "-p", "data=missing.csv", "--store", str(store)])
    err = capsys.readouterr().err
    assert code == 2 and "parameter 'data': there is no file at" in err and "Traceback" not in err


# -- outputs -------------------------------------------------------------------------------------


def test_a_returned_file_is_kept_by_content_and_restored_when_its_path_is_gone(flows: Any, tmp_path: Path,
                                                                               store: Path) -> None:
    report = tmp_path / "report.txt"
    first = flows.csv_flow.run(store=store)
    assert first.result == {"path": str(report), "text": "rows=2\n"}  # its own path, while it holds the bytes
    assert first.steps["write_report"].output_digest == fingerprint(fk.File(report))  # the content's digest
    assert (store / layout.object_path(file_digest(str(report)))).read_bytes() == b"rows=2\n"

    report.unlink()
    again = flows.csv_flow.run(store=store, force_steps=["read_report"])
    assert statuses(again) == {"count_rows": "cached", "write_report": "cached", "read_report": "ran"}
    restored = Path(again.result["path"])
    assert again.result["text"] == "rows=2\n" and restored.parent.parent == store / layout.FILES
    assert restored.name == "report.txt" and not report.exists()  # the user's folder is not written to
    assert again.output("write_report") == fk.File(str(restored))

    restored.write_text("changed in place")  # a restored copy is checked on every use
    assert again.output("write_report").read_text() == "rows=2\n"
    out = tmp_path / "exported.txt"
    from flowkit.cli import main

    assert main(["output", again.id, "write_report", "--to", str(out), "--store", str(store)]) == 0
    assert out.read_text() == "rows=2\n"  # `flowkit output` restores the file and copies its bytes


def test_a_returned_folder_in_a_dict_is_restored_on_the_process_backend(flows: Any, tmp_path: Path,
                                                                        store: Path) -> None:
    first = flows.folder_flow.run(store=store, n=3, backend="process", workers=2)
    assert first.result == {"path": str(tmp_path / "made"), "parts": ["0", "1", "2"], "empty": True}
    assert first.output("write_folder")["parts"] == 3

    shutil.rmtree(tmp_path / "made")
    again = flows.folder_flow.run(store=store, n=3, backend="process", workers=2, force_steps=["read_folder"])
    assert statuses(again) == {"write_folder": "cached", "read_folder": "ran"}
    assert again.result["parts"] == ["0", "1", "2"] and again.result["empty"]
    assert Path(again.result["path"]).parent.parent == store / layout.FILES


def test_the_same_bytes_written_again_leave_the_downstream_cached(flows: Any, store: Path) -> None:
    flows.parity_flow.run(store=store, n=1)
    same = flows.parity_flow.run(store=store, n=3)  # parity re-runs, writes "1" again
    assert statuses(same) == {"parity": "ran", "read_report": "cached"}
    other = flows.parity_flow.run(store=store, n=2)
    assert statuses(other) == {"parity": "ran", "read_report": "ran"} and other.result["text"] == "0"


def test_a_returned_file_that_is_not_there_fails_its_step_with_the_reason(flows: Any, tmp_path: Path,
                                                                          store: Path) -> None:
    @fk.step
    def forgets(n):
        return [fk.File("never-written.txt")]

    @fk.flow
    def forgetful(n: int = 1):
        return forgets(n)

    run = forgetful.run(store=store)
    error = run.steps["forgets"].error
    assert run.status == "failed" and "returned fk.File('never-written.txt') (at [0])" in error
    assert "nothing at" in error


# -- the store: datasets, gc, verify ---------------------------------------------------------------


def test_datasets_lists_inputs_and_outputs_with_their_versions(flows: Any, tmp_path: Path, store: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "data" / "in.csv"
    one = flows.csv_flow.run(store=store)
    two = flows.csv_flow.run(store=store)
    csv.write_text("a,b\n1,2\n3,4\n")
    three = flows.csv_flow.run(store=store)

    assert main(["datasets", "--json", "--store", str(store)]) == 0
    found = {d["name"]: d for d in json.loads(capsys.readouterr().out)["datasets"]}
    assert set(found) == {"data", "write_report:report.txt"}
    data = found["data"]
    assert (data["role"], data["kind"], data["flow"]) == ("input", "file", "csv_flow")
    assert [(v["runs"], v["first_run"], v["last_run"]) for v in data["versions"]] == [
        (2, one.id, two.id), (1, three.id, three.id)]
    assert data["versions"][1]["digest"] == file_digest(str(csv))
    report = found["write_report:report.txt"]
    assert (report["role"], report["source"]) == ("output", "write_report")
    assert [v["runs"] for v in report["versions"]] == [2, 1]
    assert report["versions"][-1]["digest"] == file_digest(str(tmp_path / "report.txt"))

    assert main(["datasets", "--store", str(store)]) == 0
    text = capsys.readouterr().out
    assert "data (input)" in text and "write_report:report.txt (output)" in text
    assert data["versions"][0]["digest"][:12] in text
    assert [d.name for d in datasets(open_store(store), "dir_flow")] == []


def test_gc_keeps_the_files_of_kept_outputs_and_drops_the_others(flows: Any, tmp_path: Path, store: Path) -> None:
    csv, report = tmp_path / "data" / "in.csv", tmp_path / "report.txt"
    flows.csv_flow.run(store=store)
    old = file_digest(str(report))
    csv.write_text("a\n1\n2\n3\n")
    flows.csv_flow.run(store=store)
    kept = file_digest(str(report))
    report.unlink()
    assert flows.csv_flow.run(store=store, force_steps=["read_report"]).result["text"] == "rows=4\n"

    the_store = open_store(store)
    done = collect(the_store, keep=1, grace=0)
    assert done.runs_removed == 2
    assert not (store / layout.object_path(old)).exists() and (store / layout.object_path(kept)).exists()
    assert (store / layout.restored_folder(kept)).is_dir()
    assert len(list((store / layout.MANIFESTS).rglob("*.json"))) == 1
    again = flows.csv_flow.run(store=store, force_steps=["read_report"])
    assert again.result["text"] == "rows=4\n" and statuses(again)["write_report"] == "cached"


def test_verify_finds_a_file_an_output_names_gone_and_its_step_runs_again(flows: Any, tmp_path: Path,
                                                                          store: Path) -> None:
    report = tmp_path / "report.txt"
    flows.csv_flow.run(store=store)
    digest = file_digest(str(report))
    (store / layout.object_path(digest)).unlink()
    found = verify(open_store(store))
    assert [(p.what, p.path.startswith(layout.KEYS)) for p in found.problems] == [("missing object", True)]
    assert digest[:12] in found.problems[0].detail
    report.unlink()
    again = flows.csv_flow.run(store=store)
    assert statuses(again) == {"count_rows": "cached", "write_report": "ran", "read_report": "cached"}
    assert (store / layout.object_path(digest)).exists()
