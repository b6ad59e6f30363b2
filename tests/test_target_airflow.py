"""The airflow target: golden DAG files, parse and refusal checks, and the real Airflow 3 and 2.x.

The consumer tier compiles four flows into one DAGS_FOLDER, migrates a fresh Airflow database
once per version, and runs every DAG with ``dag.test()`` in one driver process
(``tests/airflow_driver.py``, run with that Airflow venv's python); results are read back from
the flowkit store the tasks wrote to.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import attrs
import pytest

from flowkit.backends.compilers.airflow import AirflowCompiler, task_ids
from flowkit.backends.base import CompileOptions, code_digests
from flowkit.cli import main
from flowkit.errors import CompileError
from flowkit.loading import load_flow
from flowkit.store import open_store

try:  # tests/ as a package, or as a rootdir folder
    from .conftest import require_env
except ImportError:
    from conftest import require_env

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "airflow"
DRIVER = REPO / "tests" / "airflow_driver.py"
HELLO = REPO / "examples" / "hello" / "flow.py"

# (flow file relative to the repo, attribute); the golden cases, and "resume" for the consumer tier
CASES = {
    "hello": ("examples/hello/flow.py", "hello"),
    "fanout": ("tests/flows/airflow_fanout.py", "fanout"),
    "hostile": ("tests/flows/airflow_hostile.py", "hostile"),
}
RESUME = ("tests/flows/airflow_resume.py", "resume")
# .map flows (run-time fan-out): golden files and the consumer tier, apart from CASES, whose
# one-operator-per-node check a map (three tasks, one of them mapped) does not meet
MAPPED = {
    "map": ("tests/flows/airflow_map.py", "mapped"),
    "map-tolerant": ("tests/flows/airflow_map.py", "tolerant"),
}
HOSTILE = "it's \"quoted\" \\ back\\slash $(touch INJECTED) `touch INJECTED` {{ x }} {% y %}\nnext line"
PASSED = "passed: it's \"q\" \\\\ $(touch INJECTED) `touch INJECTED` {{ params.text }} {% if 1 %}x{% endif %}\n2nd"
HOSTILE_NODE = "it's a \"step\" {{ x }}"


def ref_of(case: str) -> str:
    relative, attr = RESUME if case == "resume" else {**CASES, **MAPPED}[case]
    return f"{REPO / relative}:{attr}"


def flow_of(case: str) -> Any:
    return load_flow(ref_of(case))


def fixed_options(case: str) -> CompileOptions:
    """Options as a user on another machine would get them, with fake digests that never move."""
    relative, attr = {**CASES, **MAPPED}[case]
    flow = flow_of(case)
    fake = {name: hashlib.sha256(f"fake:{name}".encode()).hexdigest() for name in flow.graph.nodes}
    return CompileOptions(flow_ref=f"/project/{relative}:{attr}", source=relative, workdir="/project",
                          store="file:///shared/store", code_digests=fake)


def compile_text(flow: Any, options: CompileOptions) -> tuple[str, str]:
    (artifact,) = AirflowCompiler().compile(flow, options)
    return artifact.path, artifact.content


# -- tier 1: golden files --------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted({**CASES, **MAPPED}))
def test_compiled_dag_matches_golden_file(case: str) -> None:
    path, text = compile_text(flow_of(case), fixed_options(case))
    golden = GOLDEN / path
    if os.environ.get("FLOWKIT_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden}: run with FLOWKIT_UPDATE_GOLDEN=1"
    assert text == golden.read_text(), f"{path} differs from {golden}; FLOWKIT_UPDATE_GOLDEN=1 rewrites it"


@pytest.mark.parametrize("case", sorted({**CASES, **MAPPED}))
def test_compiling_twice_gives_identical_bytes(case: str) -> None:
    assert compile_text(flow_of(case), fixed_options(case)) == compile_text(flow_of(case), fixed_options(case))


def test_artifact_is_named_after_the_flow() -> None:
    assert compile_text(flow_of("fanout"), fixed_options("fanout"))[0] == "airflow_fanout.py"
    assert compile_text(flow_of("hello"), fixed_options("hello"))[0] == "hello.py"


# -- tier 2: parse, escaping, refusals ---------------------------------------------------------


def module_constants(text: str) -> dict[str, Any]:
    """The module-level literal assignments of a generated file (PARAMS, STEPS, WORKDIR)."""
    constants = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            constants[node.targets[0].id] = ast.literal_eval(node.value)
    return constants


def operator_calls(text: str) -> list[ast.Call]:
    return [node for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "PythonOperator"]


@pytest.mark.parametrize("case", [*sorted(CASES), "resume", "ml"])
def test_every_generated_file_parses_with_one_operator_per_node(case: str) -> None:
    flow = load_flow(f"{REPO / 'examples/ml/flow.py'}:digits") if case == "ml" else flow_of(case)
    options = CompileOptions(flow_ref="/p/f.py:x", source="f.py", workdir="/p", store="file:///s",
                             code_digests=code_digests(flow))
    _, text = compile_text(flow, options)
    ast.parse(text)
    steps = module_constants(text)["STEPS"]
    assert sorted(step["node"] for step in steps.values()) == sorted(flow.graph.nodes)
    assert len(operator_calls(text)) == len(flow.graph.nodes)


def test_user_values_stay_literals_and_never_reach_templated_fields() -> None:
    flow = flow_of("hostile")
    _, text = compile_text(flow, fixed_options("hostile"))
    constants = module_constants(text)
    (task_id,) = [t for t, step in constants["STEPS"].items() if step["node"] == HOSTILE_NODE]
    step = constants["STEPS"][task_id]
    assert f"--step={HOSTILE_NODE}" in step["argv"]
    assert step["env"] == {"HOSTILE_ENV": HOSTILE}
    assert constants["PARAMS"] == (("text", True),)
    # PythonOperator renders op_args, op_kwargs and templates_dict with Jinja: none are used.
    for call in operator_calls(text):
        assert {kw.arg for kw in call.keywords} == {"task_id", "python_callable", "retries", "retry_delay",
                                                    "execution_timeout"}
    defaults = [ast.literal_eval(call.args[0]) for call in ast.walk(ast.parse(text))
                if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Param"]
    assert defaults == [HOSTILE]


def test_a_hostile_flow_string_cannot_break_the_header() -> None:
    flow = flow_of("hello")
    plain = compile_text(flow, fixed_options("hello"))[1]
    evil = attrs.evolve(fixed_options("hello"), source="x.py\nimport os; os.system('touch INJECTED') # \"'\\")
    text = compile_text(flow, evil)[1]
    ast.parse(text)
    assert len(text.splitlines()) == len(plain.splitlines())
    assert not any(line.startswith("import os;") for line in text.splitlines())


def test_options_become_operator_arguments() -> None:
    _, text = compile_text(flow_of("fanout"), fixed_options("fanout"))
    by_task = {}
    for call in operator_calls(text):
        kwargs = {kw.arg: ast.unparse(kw.value) for kw in call.keywords}
        by_task[ast.literal_eval(call.keywords[0].value)] = kwargs
    assert by_task["train-2"]["retries"] == "2"
    assert by_task["train-2"]["retry_delay"] == "timedelta(seconds=5.0)"
    assert by_task["train-2"]["execution_timeout"] == "timedelta(seconds=600.0)"
    assert by_task["load"]["execution_timeout"] == "None"
    assert "schedule='@daily'" in text and "catchup=False" in text


def test_task_ids_are_valid_unique_and_keep_valid_names() -> None:
    names = ["a b", "a_b", "a-b", "it's", "it_s", "x" * 300, "..", "ünï", "train.2"]
    ids = task_ids(names)
    assert ids == task_ids(names)
    assert ids["a_b"] == "a_b" and ids["a-b"] == "a-b" and ids["train.2"] == "train.2" and ids["it_s"] == "it_s"
    assert len(set(ids.values())) == len(names)
    for task_id in ids.values():
        assert task_id and len(task_id) <= 250 and all(ch.isascii() and (ch.isalnum() or ch in "-_.") for ch in task_id)


@pytest.mark.parametrize("option, value", [("image", '"python:3.11-slim"'), ("resources", "fk.Resources(cpu=2)")])
def test_options_airflow_cannot_express_are_refused(write_module, option: str, value: str) -> None:
    module = write_module(f"""
        import flowkit as fk

        @fk.step
        def first() -> int:
            return 1

        @fk.step({option}={value})
        def heavy(x: int) -> int:
            return x

        @fk.flow
        def needs_{option}():
            return heavy(first())
    """)
    flow = getattr(module, f"needs_{option}")
    with pytest.raises(CompileError) as err:
        AirflowCompiler().compile(flow, fixed_options("hello"))
    assert "'heavy'" in str(err.value) and repr(option) in str(err.value)
    assert "argo" in str(err.value) and "docker" in str(err.value)


def test_a_flow_image_is_refused_too(write_module) -> None:
    module = write_module("""
        import flowkit as fk

        @fk.step
        def only() -> int:
            return 1

        @fk.flow(image="python:3.11-slim")
        def imaged():
            return only()
    """)
    with pytest.raises(CompileError, match="'image'"):
        AirflowCompiler().compile(module.imaged, fixed_options("hello"))


def test_a_scheduled_flow_with_a_required_parameter_is_refused(write_module) -> None:
    module = write_module("""
        import flowkit as fk

        @fk.step
        def use(day: str) -> str:
            return day

        @fk.flow(schedule="@daily")
        def nightly(day: str):
            return use(day)
    """)
    with pytest.raises(CompileError, match="'day' has no default.*'@daily'"):
        AirflowCompiler().compile(module.nightly, fixed_options("hello"))


def test_cli_compile_writes_the_dag_file(capsys, tmp_path: Path) -> None:
    code = main(["compile", f"{HELLO}:hello", "--target", "airflow", "-o", str(tmp_path / "dags"),
                 "--store", str(tmp_path / "store")])
    capsys.readouterr()
    assert code == 0
    text = (tmp_path / "dags" / "hello.py").read_text()
    steps = module_constants(text)["STEPS"]
    assert steps["greet"]["argv"][steps["greet"]["argv"].index("--store") + 1] == (tmp_path / "store").as_uri()


def mapped_calls(text: str) -> dict[str, dict[str, str]]:
    """``PythonOperator.partial(...).expand(...)``: task_id -> the partial's and expand's keywords, as source."""
    calls = {}
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "expand":
            partial = node.func.value
            assert isinstance(partial, ast.Call) and ast.unparse(partial.func) == "PythonOperator.partial"
            kwargs = {kw.arg: ast.unparse(kw.value) for kw in partial.keywords}
            kwargs.update({f"expand:{kw.arg}": ast.unparse(kw.value) for kw in node.keywords})
            calls[ast.literal_eval(kwargs["task_id"])] = kwargs
    return calls


def edges_of(text: str) -> set[tuple[str, str]]:
    """``tasks[A] >> tasks[B]`` statements as (A, B)."""
    return {(ast.literal_eval(node.left.slice), ast.literal_eval(node.right.slice)) for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.RShift)}


def test_a_map_becomes_an_items_task_a_mapped_task_and_a_gather() -> None:
    _, text = compile_text(flow_of("map"), fixed_options("map"))
    steps = module_constants(text)["STEPS"]
    assert {task: step["node"] for task, step in steps.items()} == {
        "split": "split", "square__items": "square", "square__item": "square", "square": "square",
        "inc__items": "inc", "inc__item": "inc", "inc": "inc", "total": "total"}
    assert steps["square__items"]["argv"][-1] == "--items"
    assert steps["square__item"]["argv"] == steps["square"]["argv"] == steps["square__items"]["argv"][:-1]
    mapped = mapped_calls(text)
    assert sorted(mapped) == ["inc__item", "square__item"]
    assert mapped["square__item"]["python_callable"] == "run_item"
    assert mapped["square__item"]["expand:op_kwargs"] == "tasks['square__items'].output.map(as_op_kwargs)"
    assert mapped["square__item"]["max_active_tis_per_dagrun"] == "2"         # max_parallel=2
    assert "max_active_tis_per_dagrun" not in mapped["inc__item"]            # no max_parallel
    plain = {ast.literal_eval(call.keywords[0].value): {kw.arg: ast.unparse(kw.value) for kw in call.keywords}
             for call in operator_calls(text)}
    assert plain["square__items"]["python_callable"] == "list_items"
    assert plain["square"]["trigger_rule"] == "'all_done'"                    # min_success_ratio decides
    assert "trigger_rule" not in plain["total"] and "trigger_rule" not in plain["square__items"]
    assert edges_of(text) == {("split", "square__items"), ("square__items", "square__item"), ("square__item", "square"),
                              ("square", "inc__items"), ("inc__items", "inc__item"), ("inc__item", "inc"),
                              ("inc", "total")}


def test_a_flow_without_a_map_gets_no_map_helpers() -> None:
    _, text = compile_text(flow_of("fanout"), fixed_options("fanout"))
    assert "def list_items" not in text and ".expand(" not in text and "*extra" not in text
    _, text = compile_text(flow_of("map"), fixed_options("map"))
    assert "def list_items" in text and "def run_item" in text


def test_a_task_id_a_map_needs_that_another_step_has_is_refused(write_module) -> None:
    module = write_module("""
        import flowkit as fk

        @fk.step
        def listing() -> list:
            return [1, 2]

        @fk.step
        def one(x: int) -> int:
            return x

        @fk.flow
        def clash():
            return listing.options(name="one__items")(), one.map(listing())
    """)
    with pytest.raises(CompileError, match=r"step 'one'.*'one__items'.*step 'one__items'") as err:
        AirflowCompiler().compile(module.clash, fixed_options("hello"))
    assert ".options(name=...)" in str(err.value)


# -- tier 3: the real Airflow ------------------------------------------------------------------

AIRFLOWS = {"airflow3": "FLOWKIT_AIRFLOW3_PY", "airflow2": "FLOWKIT_AIRFLOW2_PY"}
AIRFLOW_FIRST = {  # run in Airflow, then locally: the local run must be all cached
    "hello": {"name": "Ada"},
    "fanout": {"n_rows": 3, "offset": 1.5, "tags": ["t", "u"], "settings": {"k": [1, 2]}, "verbose": True},
}
MAP_CONF = {"n": 4, "bonus": 1}
LOCAL_FIRST = {  # run locally, then in Airflow: the Airflow run must be all cached
    "hello": {"name": "Local Bob"},
    "fanout": {"n_rows": 6},
}


class Consumer:
    """One Airflow version's session: the DAGs ran, the store they wrote to, the driver's answer."""

    def __init__(self, root: Path, result: dict[str, Any], local_digests: dict[str, dict[str, str]]) -> None:
        self.root = root
        self.store = open_store(root / "store")
        self.result = result
        self.local_digests = local_digests
        self.runs = result["runs"]

    def run(self, label: str) -> dict[str, Any]:
        return next(run for run in self.runs if run["label"] == label)

    def records(self, flow: Any, label: str, items: int = 0) -> dict[str, dict[str, Any] | None]:
        """The run's node records; with ``items``, also those of items 0..items-1 of each map."""
        run_id = self.run(label)["run_id"]
        names = [*flow.graph.order(), *(f"{m}[{i}]" for m in flow.graph.maps() for i in range(items))]
        return {name: self.store.read_node(run_id, name) for name in names}

    def instances(self, label: str) -> dict[str, dict[int, str]]:
        """task_id -> map_index -> state of the run's task instances (-1: an unmapped task)."""
        out: dict[str, dict[int, str]] = {}
        for task_id, map_index, state in self.run(label)["tasks"]:
            out.setdefault(task_id, {})[map_index] = state
        return out


@pytest.fixture(scope="module", params=sorted(AIRFLOWS))
def airflow(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Consumer:
    python = require_env(AIRFLOWS[request.param], "a virtualenv with Airflow and flowkit (.ci/airflow.sh)")
    root = tmp_path_factory.mktemp(request.param)
    dags, work, store = root / "dags", root / "work", root / "store"
    dags.mkdir()
    work.mkdir()
    dag_ids = {}
    for name in ["hello", "fanout", "hostile", "resume", *MAPPED]:
        flow = flow_of(name)
        options = CompileOptions(flow_ref=ref_of(name), source=name, workdir=str(work), store=store.as_uri(),
                                 code_digests=code_digests(flow))
        (artifact,) = AirflowCompiler().compile(flow, options)
        (dags / artifact.path).write_text(artifact.content)
        dag_ids[name] = flow.name
    local_digests = {}
    for name, params in LOCAL_FIRST.items():
        run = flow_of(name).run(store=store, **params)
        assert run.status == "succeeded"
        local_digests[name] = {step: outcome.output.digest for step, outcome in run.steps.items()}
    marker, map_marker = root / "marker", root / "map-marker"
    marker.touch()
    map_marker.touch()
    runs = [
        *({"label": f"airflow-first:{n}", "dag_id": dag_ids[n], "conf": c} for n, c in AIRFLOW_FIRST.items()),
        *({"label": f"local-first:{n}", "dag_id": dag_ids[n], "conf": c} for n, c in LOCAL_FIRST.items()),
        {"label": "hostile:default", "dag_id": dag_ids["hostile"], "conf": {}},
        {"label": "hostile:passed", "dag_id": dag_ids["hostile"], "conf": {"text": PASSED}},
        {"label": "resume:fails", "dag_id": dag_ids["resume"], "conf": {"marker": str(marker)}},
        {"label": "resume:again", "dag_id": dag_ids["resume"], "conf": {"marker": str(marker)},
         "remove_before": str(marker)},
        {"label": "map", "dag_id": dag_ids["map"], "conf": MAP_CONF},
        {"label": "map:tolerant", "dag_id": dag_ids["map-tolerant"], "conf": {"marker": str(map_marker)}},
    ]
    plan = root / "plan.json"
    plan.write_text(json.dumps({"dags_folder": str(dags), "runs": runs}))
    env = {**os.environ, "AIRFLOW_HOME": str(root / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(dags)}
    log = root / "airflow.log"
    with log.open("w") as out:
        migrated = subprocess.run([python, "-m", "airflow", "db", "migrate"], env=env, cwd=work, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=300)
        assert migrated.returncode == 0, f"airflow db migrate failed, see {log}:\n{log.read_text()[-3000:]}"
        driven = subprocess.run([python, str(DRIVER), str(plan), str(root / "result.json")], env=env, cwd=work,
                                stdout=out, stderr=subprocess.STDOUT, timeout=600)
    assert driven.returncode == 0, f"the Airflow driver failed, see {log}:\n{log.read_text()[-3000:]}"
    result = json.loads((root / "result.json").read_text())
    if result["import_errors"]:
        pytest.fail(f"Airflow {result['airflow']} could not import the DAGs: {result['import_errors']}")
    for run, item in zip(result["runs"], runs):
        run["label"] = item["label"]
    return Consumer(root, result, local_digests)


@pytest.mark.consumer
def test_every_dag_imports_without_errors(airflow: Consumer) -> None:
    assert airflow.result["import_errors"] == {}
    assert airflow.result["dag_ids"] == ["airflow_fanout", "airflow_hostile", "airflow_map", "airflow_map_tolerant",
                                         "airflow_resume", "hello"]


@pytest.mark.consumer
@pytest.mark.parametrize("name", sorted(AIRFLOW_FIRST))
def test_airflow_run_then_local_run_is_all_cached_with_an_equal_result(airflow: Consumer, name: str) -> None:
    assert airflow.run(f"airflow-first:{name}")["state"] == "success"
    flow = flow_of(name)
    records = airflow.records(flow, f"airflow-first:{name}")
    assert {n: r and r.status for n, r in records.items()} == {n: "ran" for n in flow.graph.nodes}
    local = flow.run(store=airflow.root / "store", **AIRFLOW_FIRST[name])
    assert {n: o.status for n, o in local.steps.items()} == {n: "cached" for n in flow.graph.nodes}
    airflow_digests = {n: r.output.digest for n, r in records.items()}
    assert {n: o.output.digest for n, o in local.steps.items()} == airflow_digests
    last = records[flow.graph.order()[-1]]
    assert local.result == airflow.store.load(last.output)


@pytest.mark.consumer
@pytest.mark.parametrize("name", sorted(LOCAL_FIRST))
def test_local_run_then_airflow_run_is_all_cached(airflow: Consumer, name: str) -> None:
    assert airflow.run(f"local-first:{name}")["state"] == "success"
    records = airflow.records(flow_of(name), f"local-first:{name}")
    assert {n: r and r.status for n, r in records.items()} == {n: "cached" for n in records}
    assert {n: r.output.digest for n, r in records.items()} == airflow.local_digests[name]


@pytest.mark.consumer
def test_hostile_values_arrive_unchanged_and_nothing_is_injected(airflow: Consumer) -> None:
    flow = flow_of("hostile")
    for label, text in [("hostile:default", HOSTILE), ("hostile:passed", PASSED)]:
        assert airflow.run(label)["state"] == "success"
        records = airflow.records(flow, label)
        said = airflow.store.load(records[HOSTILE_NODE].output)
        assert said == {"text": text, "env": HOSTILE}
        assert airflow.store.load(records["measure"].output)["text"] == text
    assert list(airflow.root.rglob("INJECTED")) == []
    assert not (REPO / "INJECTED").exists() and not Path("INJECTED").exists()


@pytest.mark.consumer
def test_resubmitting_a_failed_run_reuses_its_finished_steps(airflow: Consumer) -> None:
    flow = flow_of("resume")
    failed, again = airflow.run("resume:fails"), airflow.run("resume:again")
    assert failed["state"] == "failed" and again["state"] == "success"
    assert failed["run_id"] != again["run_id"]
    first = airflow.records(flow, "resume:fails")
    assert {n: r and r.status for n, r in first.items()} == {"prepare": "ran", "side": "ran", "gate": "failed",
                                                                "finish": None}
    second = airflow.records(flow, "resume:again")
    assert {n: r.status for n, r in second.items()} == {"prepare": "cached", "side": "cached", "gate": "ran",
                                                           "finish": "ran"}
    assert airflow.store.load(second["finish"].output) == 3 * 10 + 1 + 3 + 1


@pytest.mark.consumer
def test_a_mapped_flow_runs_one_task_instance_per_item_and_a_local_run_is_all_cached(airflow: Consumer) -> None:
    assert airflow.run("map")["state"] == "success"
    n = MAP_CONF["n"]
    instances = airflow.instances("map")
    for name in ("square", "inc"):
        assert instances[f"{name}__item"] == {i: "success" for i in range(n)}      # one per item
        assert instances[f"{name}__items"] == instances[name] == {-1: "success"}
    flow = flow_of("map")
    records = airflow.records(flow, "map", items=n)
    assert {name: r and r.status for name, r in records.items()} == {name: "ran" for name in records}
    assert airflow.store.load(records["square"].output) == [(i * 10) ** 2 for i in range(n)]
    local = flow.run(store=airflow.root / "store", **MAP_CONF)
    assert sorted(local.steps) == sorted(records)
    assert {name: o.status for name, o in local.steps.items()} == {name: "cached" for name in records}
    assert {name: o.output.digest for name, o in local.steps.items()} == {n_: r.output.digest for n_, r in records.items()}
    assert local.result == airflow.store.load(records["total"].output) == sum((i * 10) ** 2 + 2 for i in range(n))


@pytest.mark.consumer
def test_a_failed_item_within_min_success_ratio_lets_the_gather_and_the_run_succeed(airflow: Consumer) -> None:
    run = airflow.run("map:tolerant")
    assert run["state"] == "success"
    assert airflow.instances("map:tolerant")["fragile__item"] == {0: "success", 1: "success", 2: "failed", 3: "success"}
    records = airflow.records(flow_of("map-tolerant"), "map:tolerant", items=4)
    assert records["fragile[2]"].status == "failed"
    assert airflow.store.load(records["fragile"].output) == [1, 11, 31]
    assert airflow.store.load(records["total"].output) == 43
