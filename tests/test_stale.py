"""Never a stale hit: what a step's code reads, through any path, is in its key, and a change to it
is seen in the same process (a notebook, a REPL, a script that runs a flow twice).

``cell`` runs source in a flow module's namespace the way a notebook cell does: a new function
object under the old name, its source in ``linecache`` as IPython keeps it.
"""

from __future__ import annotations

import itertools
import linecache
import textwrap
from types import ModuleType

import pytest

_CELLS = itertools.count(1)


def cell(module: ModuleType, source: str) -> None:
    """Run ``source`` in ``module``'s globals, as a notebook cell would."""
    text = textwrap.dedent(source)
    name = f"<cell-{next(_CELLS)}>"
    linecache.cache[name] = (len(text), None, text.splitlines(True), name)
    exec(compile(text, name, "exec"), module.__dict__)


def result_and_statuses(flow, store) -> tuple[object, dict[str, str]]:
    run = flow.run(store=store)
    assert run.status == "succeeded", [o.error for o in run.steps.values()]
    return run.result, {name: o.status for name, o in run.steps.items()}


BASE = '''
import flowkit as fk

def helper(x):
    return x + 1

@fk.step
def compute(x: int) -> int:
    return helper(x)

@fk.flow
def pipe(x: int = 1):
    return compute(x)
'''


def test_a_helper_redefined_in_the_same_process_re_runs_the_step(write_module, store) -> None:
    mod = write_module(BASE)
    assert result_and_statuses(mod.pipe, store) == (2, {"compute": "ran"})
    cell(mod, "def helper(x):\n    return x + 100\n")
    assert result_and_statuses(mod.pipe, store) == (101, {"compute": "ran"})
    assert result_and_statuses(mod.pipe, store) == (101, {"compute": "cached"})


def test_a_step_redefined_in_the_same_process_re_traces_the_flow(write_module, store) -> None:
    mod = write_module(BASE)
    assert result_and_statuses(mod.pipe, store) == (2, {"compute": "ran"})
    cell(mod, '''
    @fk.step
    def compute(x: int) -> int:
        return helper(x) * 10
    ''')
    assert result_and_statuses(mod.pipe, store) == (20, {"compute": "ran"})
    assert result_and_statuses(mod.pipe, store) == (20, {"compute": "cached"})


GLOBALS = '''
import collections
import functools
import numpy as np
import flowkit as fk

CONFIG = {"lr": 0.1}
LAYERS = [1, 2]
TAGS = {"a"}
WEIGHTS = np.array([1.0, 2.0])

def double(x):
    return 2 * x

OPS = {"double": double}

def scale(x, factor):
    return x * factor

TRIPLE = functools.partial(scale, factor=3)

@fk.step
def read_config() -> float:
    return CONFIG["lr"]

@fk.step
def read_containers() -> list:
    return [sum(LAYERS), sorted(TAGS), float(WEIGHTS.sum())]

@fk.step
def through_container(x: int) -> int:
    return OPS["double"](x)

@fk.step
def through_partial(x: int) -> int:
    return TRIPLE(x)

@fk.flow
def globals_flow():
    return read_config(), read_containers(), through_container(5), through_partial(5)
'''


def test_global_values_are_in_the_key_whether_rebound_or_changed_in_place(write_module, store) -> None:
    mod = write_module(GLOBALS)
    result, _ = result_and_statuses(mod.globals_flow, store)
    assert result == (0.1, [3, ["a"], 3.0], 10, 15)
    mod.CONFIG["lr"] = 0.9                      # in place
    mod.LAYERS.append(3)
    mod.TAGS.add("b")
    mod.WEIGHTS[0] = 5.0
    plan = mod.globals_flow.plan(store=store)
    assert plan["read_config"].reason == "code changed: global CONFIG"
    assert plan["read_containers"].reason == "code changed: global LAYERS, global TAGS, global WEIGHTS"
    result, statuses = result_and_statuses(mod.globals_flow, store)
    assert result == (0.9, [6, ["a", "b"], 7.0], 10, 15)
    assert statuses == {"read_config": "ran", "read_containers": "ran", "through_container": "cached",
                        "through_partial": "cached"}
    mod.CONFIG = {"lr": 0.5}                    # rebound
    assert result_and_statuses(mod.globals_flow, store)[0][0] == 0.5


def test_functions_reached_through_a_container_or_a_partial_are_in_the_key(write_module, store) -> None:
    mod = write_module(GLOBALS)
    result_and_statuses(mod.globals_flow, store)
    cell(mod, "def double(x):\n    return 4 * x\n\nOPS['double'] = double\n")
    cell(mod, "def scale(x, factor):\n    return x * factor + 1\n\nTRIPLE = functools.partial(scale, factor=3)\n")
    result, statuses = result_and_statuses(mod.globals_flow, store)
    assert result[2:] == (20, 16)
    assert statuses["through_container"] == statuses["through_partial"] == "ran"
    mod.TRIPLE = mod.functools.partial(mod.scale, factor=4)  # the partial's own argument
    assert result_and_statuses(mod.globals_flow, store)[0][3] == 21


OBJECTS = '''
import flowkit as fk

class Base:
    def offset(self):
        return 1

class Scaler(Base):
    unit = 10

    def __init__(self, factor):
        self.factor = factor

    def apply(self, x):
        return x * self.factor * self.unit + self.offset()

MODEL = Scaler(2)

@fk.step
def with_global(x: int) -> int:
    return MODEL.apply(x)

@fk.step
def with_argument(model, x: int) -> int:
    return model.apply(x)

@fk.flow
def objects(x: int = 1):
    return with_global(x), with_argument(Scaler(3), x)
'''


def test_a_global_instance_counts_with_its_state_class_methods_bases_and_class_attributes(write_module, store) -> None:
    mod = write_module(OBJECTS)
    assert result_and_statuses(mod.objects, store)[0] == (21, 31)
    mod.MODEL.factor = 5                                            # its state
    assert result_and_statuses(mod.objects, store) == ((51, 31), {"with_global": "ran", "with_argument": "cached"})
    mod.Scaler.unit = 100                                           # a class attribute
    assert result_and_statuses(mod.objects, store)[0] == (501, 301)
    cell(mod, "def offset(self):\n    return 7\n\nBase.offset = offset\n")  # a base class's method
    result, statuses = result_and_statuses(mod.objects, store)
    assert result == (507, 307) and set(statuses.values()) == {"ran"}


def test_an_argument_of_a_user_class_counts_with_its_class_code(write_module, store) -> None:
    mod = write_module(OBJECTS)
    assert result_and_statuses(mod.objects, store)[0] == (21, 31)
    cell(mod, '''
    class Scaler(Base):
        unit = 10

        def __init__(self, factor):
            self.factor = factor

        def apply(self, x):
            return -x * self.factor * self.unit
    ''')
    cell(mod, "MODEL = Scaler(2)\n")
    assert result_and_statuses(mod.objects, store)[0] == (-20, -30)


def test_an_unstable_global_makes_the_step_uncached_with_the_reason(write_module, store) -> None:
    mod = write_module('''
    import threading
    import flowkit as fk

    LOCK = threading.Lock()

    @fk.step
    def guarded() -> int:
        with LOCK:
            return 1

    @fk.flow
    def locked():
        return guarded()
    ''')
    row = mod.locked.plan(store=store)["guarded"]
    assert row.verdict == "run" and "global 'LOCK'" in row.reason and "lock" in row.reason
    assert [mod.locked.run(store=store).steps["guarded"].status for _ in range(2)] == ["ran", "ran"]


def test_a_global_the_step_only_appends_to_is_not_an_input(write_module, store) -> None:
    mod = write_module('''
    import flowkit as fk

    CALLS = []

    @fk.step
    def noted(x: int) -> int:
        CALLS.append(x)
        return x

    @fk.flow
    def noting():
        return noted(1)
    ''')
    assert result_and_statuses(mod.noting, store)[1] == {"noted": "ran"}
    assert result_and_statuses(mod.noting, store)[1] == {"noted": "cached"} and mod.CALLS == [1]


def test_a_decorators_wrapper_code_is_in_the_key(write_module, store) -> None:
    mod = write_module('''
    import functools
    import flowkit as fk

    def doubled(fn):
        @functools.wraps(fn)
        def wrapper(*args):
            return 2 * fn(*args)
        return wrapper

    @fk.step
    @doubled
    def base(x: int) -> int:
        return x

    @fk.flow
    def wrapped():
        return base(4)
    ''')
    assert result_and_statuses(mod.wrapped, store)[0] == 8
    cell(mod, '''
    def doubled(fn):
        @functools.wraps(fn)
        def wrapper(*args):
            return 3 * fn(*args)
        return wrapper

    @fk.step
    @doubled
    def base(x: int) -> int:
        return x
    ''')
    assert result_and_statuses(mod.wrapped, store) == (12, {"base": "ran"})


def test_an_enum_member_whose_value_changed_and_ordered_dict_order_change_the_key(write_module, store) -> None:
    import collections
    import enum

    from flowkit.keys.values import fingerprint

    first = enum.Enum("Mode", {"FAST": 1})
    second = enum.Enum("Mode", {"FAST": 2})
    assert fingerprint(first.FAST) != fingerprint(second.FAST)
    assert fingerprint(collections.OrderedDict(a=1, b=2)) != fingerprint(collections.OrderedDict(b=2, a=1))
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})  # a dict's order is not its value


def test_defaults_are_bound_so_equal_calls_share_a_key(write_module, store) -> None:
    mod = write_module('''
    import flowkit as fk

    @fk.step
    def add3(a: int, b: int, c: int = 3) -> int:
        return a + b + c

    @fk.flow
    def adds():
        return add3(1, 2), add3(1, 2, 3), add3(1, 2, c=4)
    ''')
    run = mod.adds.run(store=store)
    keys = [run.steps[name].cache_key for name in ("add3", "add3-2", "add3-3")]
    assert keys[0] == keys[1] != keys[2]
    assert [run.steps[name].status for name in ("add3", "add3-2")] in (["ran", "cached"], ["ran", "ran"])
    assert run.result == (6, 6, 7)


@pytest.mark.parametrize("backend", ["local", "process"])
def test_env_is_applied_on_every_backend(write_module, store, backend: str) -> None:
    mod = write_module('''
    import os
    import flowkit as fk

    @fk.step(env={"GREETING": "hello"})
    def greet() -> str:
        return os.environ["GREETING"]

    @fk.step
    def after() -> str | None:
        return os.environ.get("GREETING")

    @fk.flow
    def envs():
        return greet(), after()
    ''')
    import os

    assert "GREETING" not in os.environ
    run = mod.envs.run(store=store, backend=backend)
    assert run.status == "succeeded", run.steps["greet"].error
    assert run.result == ("hello", None) and "GREETING" not in os.environ


def test_a_callable_global_object_counts_with_its_class_code(write_module, store) -> None:
    mod = write_module('''
    import flowkit as fk

    class Doubler:
        def __call__(self, x):
            return 2 * x

    DOUBLE = Doubler()

    @fk.step
    def use(x: int) -> int:
        return DOUBLE(x)

    @fk.flow
    def callables():
        return use(3)
    ''')
    assert result_and_statuses(mod.callables, store)[0] == 6
    cell(mod, "class Doubler:\n    def __call__(self, x):\n        return 3 * x\n\nDOUBLE = Doubler()\n")
    assert result_and_statuses(mod.callables, store) == (9, {"use": "ran"})


SHARED_ARRAY = '''
import numpy as np
import flowkit as fk

BIG = np.zeros(200_000)  # 1.6 MB: large enough that one plan hashes it once for the body and the step

@fk.step
def bump():
    BIG[0] += 1.0  # changes, in place, a value the flow passes to the next step
    return 1

@fk.step
def total(values):
    return float(values.sum())

@fk.flow
def shared_array():
    return total(BIG).after(bump())
'''


def test_a_large_value_changed_in_place_by_a_step_is_keyed_as_the_next_step_gets_it(write_module, store) -> None:
    mod = write_module(SHARED_ARRAY)
    assert result_and_statuses(mod.shared_array, store)[0] == 1.0
    mod.BIG[0] = 0.0  # as a new process would see it: bump is cached and changes nothing now
    result, statuses = result_and_statuses(mod.shared_array, store)
    assert statuses == {"bump": "cached", "total": "ran"}  # total's first run was keyed by the bumped array
    assert result == 0.0
