"""@step and @flow: plain functions outside a flow, recorded nodes and handles inside one."""

from __future__ import annotations

import pytest

import flowkit as fk
from flowkit.errors import CycleError, FlowDefinitionError, ParameterError


@fk.step
def add(a: int, b: int = 1) -> int:
    return a + b


@fk.step(retries=2, timeout="10m", image="python:3.11-slim", resources=fk.Resources(cpu=2, memory="4Gi"),
         version="1", env={"MODE": "x"})
def train(rows: list, lr: float = 0.1) -> dict:
    return {"n": len(rows), "lr": lr}


@fk.step
def pick(*models: dict) -> dict:
    return max(models, key=lambda m: m["lr"])


def test_step_outside_a_flow_is_the_plain_function() -> None:
    assert add(2, 3) == 5
    assert train([1, 2], lr=0.5) == {"n": 2, "lr": 0.5}


def test_step_options_are_parsed_and_copied() -> None:
    assert train.opts.timeout == 600.0
    assert train.opts.retries == 2
    assert train.opts.resources.memory_bytes() == 4 * 2**30
    assert train.opts.env == (("MODE", "x"),)
    faster = train.options(timeout="30s", name="train_fast")
    assert faster.opts.timeout == 30.0 and faster.name == "train_fast"
    assert train.opts.timeout == 600.0  # the original is unchanged


@pytest.mark.parametrize("options, fragment", [
    ({"retries": -1}, "retries"),
    ({"timeout": "soon"}, "timeout"),
    ({"colour": "red"}, "unknown option"),
    ({"resources": fk.Resources}, "resources"),
])
def test_bad_step_options_are_flowkit_errors(options: dict, fragment: str) -> None:
    with pytest.raises(FlowDefinitionError) as info:
        fk.step(**options)(lambda: 1)
    assert fragment in str(info.value)


def test_repeated_calls_get_numbered_names_and_explicit_names() -> None:
    @fk.flow
    def grid(n: int = 3):
        rows = add(n)
        models = [train([1], lr=lr) for lr in (0.01, 0.1, 1.0)]
        small = train.options(name="train_small")([1], lr=0.5)
        return pick(*models, small), rows

    graph = grid.graph
    assert list(graph.nodes) == ["add", "train", "train-2", "train-3", "train_small", "pick"]
    assert graph.upstream("pick") == ["train", "train-2", "train-3", "train_small"]


def test_a_name_clash_names_both_call_sites() -> None:
    @fk.flow
    def clash():
        add.options(name="same")(1)
        add.options(name="same")(2)

    with pytest.raises(FlowDefinitionError) as info:
        clash.graph
    message = str(info.value)
    assert "'same'" in message and message.count("test_authoring.py:") == 2


def test_parameters_come_from_the_signature() -> None:
    @fk.flow(name="digits")
    def pipeline(n_rows: int = 1000, lr: float = 0.1, tag: str = "x", deep: bool = False, layers: list = [1],
                 cfg: dict = {}, anything=None):
        return add(n_rows)

    schema = {p.name: (p.type, p.default) for p in pipeline.params}
    assert schema == {"n_rows": ("int", 1000), "lr": ("float", 0.1), "tag": ("str", "x"), "deep": ("bool", False),
                      "layers": ("list", [1]), "cfg": ("dict", {}), "anything": ("any", None)}
    assert pipeline.name == "digits"
    assert pipeline.resolve_params({"lr": 1})["lr"] == 1.0
    with pytest.raises(ParameterError, match="'n_rows' expects int"):
        pipeline.resolve_params({"n_rows": "ten"})
    with pytest.raises(ParameterError, match="parameters: n_rows, lr, tag, deep, layers, cfg, anything"):
        pipeline.resolve_params({"rows": 1})


def test_required_parameters_must_be_given() -> None:
    @fk.flow
    def needs(n: int):
        return add(n)

    with pytest.raises(ParameterError, match="'n' \\(int\\) is required"):
        needs.resolve_params({})


@pytest.mark.parametrize("name", ["backend", "workers", "force", "force_steps", "store"])
def test_reserved_parameter_names_are_refused_at_definition(name: str) -> None:
    source = f"def f({name}=1):\n    return add({name})\n"
    namespace: dict = {"add": add}
    exec(source, namespace)
    with pytest.raises(FlowDefinitionError, match="reserved"):
        fk.flow(namespace["f"])


def test_a_parameter_in_control_flow_says_to_pass_it_to_a_step() -> None:
    @fk.flow
    def branchy(n_rows: int = 10):
        if n_rows > 5:
            return add(n_rows)
        return None

    with pytest.raises(FlowDefinitionError, match="pass n_rows to a step"):
        branchy.graph


def test_a_handle_has_no_value_at_build_time() -> None:
    @fk.flow
    def peek():
        out = add(1)
        if out:
            pass

    with pytest.raises(FlowDefinitionError, match="has no value while the flow is built"):
        peek.graph


def test_after_that_closes_a_cycle_names_it() -> None:
    @fk.flow
    def loop():
        a = add(1)
        b = add.options(name="b")(a)
        c = add.options(name="c")(b)
        a.after(c)

    with pytest.raises(CycleError) as info:
        loop.graph
    assert "add -> b -> c -> add" in str(info.value)


def test_after_orders_without_data(store) -> None:
    order: list[str] = []

    @fk.step
    def first() -> int:
        order.append("first")
        return 1

    @fk.step
    def second() -> int:
        order.append("second")
        return 2

    @fk.flow
    def ordered():
        b = second()
        a = first()
        b.after(a)
        return b

    assert ordered.graph.order() == ["first", "second"]
    ordered.run(store=store)
    assert order == ["first", "second"]


def test_indexing_a_handle_passes_that_part(store) -> None:
    @fk.step
    def pair() -> dict:
        return {"xs": [10, 20], "name": "n"}

    @fk.step
    def use(x: int, name: str) -> str:
        return f"{name}{x}"

    @fk.flow
    def indexed():
        out = pair()
        return use(out["xs"][1], name=out["name"])

    assert indexed.run(store=store).result == "n20"


def test_containers_of_handles_and_structured_results(store) -> None:
    @fk.step
    def total(values: list) -> int:
        return sum(values)

    @fk.flow
    def shaped(k: int = 2):
        parts = [add(i, k) for i in range(3)]
        return {"sum": total(parts), "first": parts[0]}, total([parts[1], 100])

    run = shaped.run(store=store)
    assert run.result == ({"sum": 9, "first": 2}, 103)


def test_a_flow_without_steps_is_an_error() -> None:
    @fk.flow
    def empty():
        return None

    with pytest.raises(FlowDefinitionError, match="calls no step"):
        empty.graph


def test_wrong_arguments_to_a_step_name_the_step() -> None:
    @fk.flow
    def wrong():
        add(1, 2, 3)

    with pytest.raises(FlowDefinitionError, match="step 'add'"):
        wrong.graph


def test_the_graph_itself_refuses_a_cycle_and_names_it() -> None:
    from flowkit.graph import FlowGraph, Node

    nodes = {name: Node(name=name, step=add, args={}, call_site="x") for name in ("a", "b", "c")}
    nodes["a"].after, nodes["b"].after, nodes["c"].after = {"c"}, {"a"}, {"b"}
    with pytest.raises(CycleError) as info:
        FlowGraph("loop", nodes, None)
    assert sorted(info.value.cycle) == ["a", "b", "c"] and "flow 'loop': cycle" in str(info.value)


def test_binding_matches_the_signature_for_every_kind_of_call() -> None:
    @fk.step
    def plain(a, b=2, c=3):
        return a

    @fk.step
    def mixed(a, *rest, key=1, **more):
        return a

    for step_, args, kwargs in [(plain, (1,), {}), (plain, (1, 5), {}), (plain, (1, 5, 6), {}), (plain, (1,), {"c": 9}),
                                (mixed, (1, 2, 3), {"key": 4, "x": 5}), (mixed, (1,), {})]:
        assert step_.bind(args, kwargs) == dict(step_.signature.bind(*args, **kwargs).arguments)
    for args in [(), (1, 2, 3, 4)]:
        with pytest.raises(TypeError):
            plain.bind(args, {})
