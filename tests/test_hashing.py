"""Fingerprints are the cache key: they must be canonical, stable across processes, and move with the code."""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from types import ModuleType

import blake3
import numpy as np
import pandas as pd
import pytest

from flowkit.authoring.files import File
from flowkit.keys.code import CodeFingerprint, code_fingerprint
from flowkit.errors import Unstable
from flowkit.keys.values import (
    SCHEME_VERSION,
    Feed,
    fingerprint,
    hash_bytes,
    register_fingerprint,
)

REPO = pathlib.Path(__file__).resolve().parents[1]

# Computed once with SCHEME_VERSION "1". If one of these moves, every user's cache is invalidated:
# bump SCHEME_VERSION on purpose and re-pin, never just re-pin.
GOLDEN = [
    (None, "8b8ba8fbc4dda7f0a4f7db696c1939322f62b998dc217df32713b3b6ef8d031a"),
    (True, "303710e8109188976b6ea9808ebfdf52a400645045424ce82fdb7736aa89c2ae"),
    (1, "428442b58efa5731a01770615b052b627d581305e9f76ea5883249d03d927c83"),
    (1.0, "2edab5ba68ae7766112c16b4bb91239fe36a5ae40b20e76fe8e9e27bac6b75c1"),
    (-(2**100), "fcbf5d7f2536f3dac48091ba8f92f2f3e7d9b473766b92d85a776619e4ffb62f"),
    ("héllo", "a2354c6834666033cdb4d27524f13aa990d74cae5d9a9b84be6867fb51be4452"),
    (b"\x00\xff", "4e6054abc4db3e07a4f21befeb5818de447465dcd1b5a5dd980221c82bd13e62"),
    ([1, "a", None], "ccab60cebf4454237f033082d2ae10ab0f8454e840c3a74517571ca6794fd272"),
    ((1.5, (2,)), "9289f2b321aed43120223935e87ab501f63ef8f2d67a19d672951f4fb93fd0ec"),
    ({"b": [1, 2], "a": {3, 1, 2}}, "df7620dc6557c02ab966e24d056f146fbda33b0e829b6a601fed853bbec69d81"),
    (frozenset({"x", "y"}), "d2f9ab27957896a2c4b51f05015d1c6149851992819846cf47172946cf1a726a"),
    (pathlib.PurePosixPath("/data/in.csv"), "3a90418357d3331b800e11b2072b43a979567cc22098ec5bcf3052a0e1f3dc66"),
    (np.arange(6, dtype="<i8").reshape(2, 3), "36e4e71d765c23fb5d56dfe74e6875a13b9738d7a7166d6d21c156c24dc000c1"),
    (np.float32(0.5), "89189ee9428a14a3900010db6e5b46f6c6e2037235024cf8527f36a9f9648f29"),
]


@pytest.mark.parametrize(("value", "digest"), GOLDEN, ids=[repr(value)[:30] for value, _ in GOLDEN])
def test_golden_digests_are_pinned(value: object, digest: str) -> None:
    assert SCHEME_VERSION == "1"
    assert fingerprint(value) == digest


def test_stable_across_processes_and_hash_seeds() -> None:
    value = ({"alpha", "beta", "gamma", "delta"}, {"z": 1, "y": [2.5, "s"], "x": {"nested": frozenset("abc")}})
    script = (
        "from flowkit.keys.values import fingerprint;"
        "print(fingerprint(({'alpha', 'beta', 'gamma', 'delta'},"
        " {'z': 1, 'y': [2.5, 's'], 'x': {'nested': frozenset('abc')}})))"
    )
    digests = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        digests.add(result.stdout.strip())
    assert digests == {fingerprint(value)}


def test_import_does_not_load_heavy_modules() -> None:
    script = "import sys, flowkit.keys.values; print(sorted({'numpy', 'pandas', 'dill', 'networkx'} & set(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_dict_and_set_order_is_irrelevant() -> None:
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({3, 1, 2}) == fingerprint({2, 3, 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_types_are_tagged() -> None:
    distinct = [1, 1.0, True, "1", b"1", [1], (1,), {1}, frozenset({1}), 0.0, -0.0, None, complex(1, 0)]
    assert len({fingerprint(value) for value in distinct}) == len(distinct)
    assert fingerprint([[1], 2]) != fingerprint([1, [2]])
    assert fingerprint(["ab", "c"]) != fingerprint(["a", "bc"])


def test_enums_dataclasses_and_paths() -> None:
    class Color(enum.IntEnum):
        RED = 1

    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    assert fingerprint(Color.RED) != fingerprint(1)
    assert fingerprint(Point(1, 2)) == fingerprint(Point(1, 2))
    assert fingerprint(Point(1, 2)) != fingerprint(Point(2, 1))
    assert fingerprint(pathlib.Path("a.csv")) != fingerprint(pathlib.Path("b.csv"))


def test_large_buffers_hash_in_place_with_blake3() -> None:
    data = bytes(range(256)) * 8192  # 2 MiB
    assert hash_bytes(data) == blake3.blake3(data).hexdigest()
    assert hash_bytes(memoryview(data)) == hash_bytes(bytearray(data))
    assert fingerprint(data) != fingerprint(data[:-1] + b"\x00")


def test_numpy_arrays_by_dtype_shape_and_buffer() -> None:
    array = np.arange(12, dtype=np.int64).reshape(3, 4)
    assert fingerprint(array) != fingerprint(array.astype(np.int32))
    assert fingerprint(array) != fingerprint(array.reshape(4, 3))
    assert fingerprint(array) == fingerprint(np.asfortranarray(array))
    assert fingerprint(array[:, ::2]) == fingerprint(np.ascontiguousarray(array[:, ::2]))
    assert fingerprint(array[:, ::2]) != fingerprint(array[:, 1::2])
    assert fingerprint(np.array([1, "a"], dtype=object)) != fingerprint(np.array([1, 1], dtype=object))
    assert fingerprint(np.float64(1.0)) != fingerprint(1.0)


def test_pandas_by_values_index_columns_and_dtypes() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    assert fingerprint(frame) == fingerprint(frame.copy())
    assert fingerprint(frame) != fingerprint(frame.set_axis([5, 6], axis=0))
    assert fingerprint(frame) != fingerprint(frame.rename(columns={"b": "c"}))
    assert fingerprint(frame) != fingerprint(frame.astype({"a": "float32"}))
    assert fingerprint(frame["a"]) != fingerprint(frame["a"].rename("z"))
    assert fingerprint(frame["a"]) != fingerprint(frame["a"].set_axis([5, 6]))
    assert fingerprint(pd.Series(["1"], dtype=object)) != fingerprint(pd.Series([1], dtype=object))


def test_file_by_content_not_path(tmp_path: pathlib.Path) -> None:
    first, moved, other = tmp_path / "a.bin", tmp_path / "sub_b.bin", tmp_path / "c.bin"
    first.write_bytes(b"same content")
    moved.write_bytes(b"same content")
    other.write_bytes(b"other content")
    assert fingerprint(File(first)) == fingerprint(File(str(moved)))
    assert fingerprint(File(first)) != fingerprint(File(other))
    assert File(first).read_bytes() == b"same content" and os.fspath(File(first)) == str(first)
    with pytest.raises(Unstable, match="cannot be read"):
        fingerprint(File(tmp_path / "missing"))


@pytest.mark.parametrize(
    ("make", "type_name"),
    [
        (lambda: (x for x in range(3)), "generator"),
        (threading.Lock, "lock"),
        (lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM), "socket"),
        (lambda: open(__file__, "rb"), "BufferedReader"),
    ],
)
def test_unstable_values_name_their_type(make: Callable[[], object], type_name: str) -> None:
    value = make()
    try:
        with pytest.raises(Unstable) as raised:
            fingerprint({"wrapped": [value]})
        assert type_name in raised.value.reason
    finally:
        getattr(value, "close", lambda: None)()


def test_self_reference_is_unstable_not_recursion_error() -> None:
    looped: list[object] = [1]
    looped.append({"again": looped})
    with pytest.raises(Unstable, match="self-referencing"):
        fingerprint(looped)
    shared = [1]
    assert fingerprint([shared, shared]) == fingerprint([[1], [1]])


def test_register_fingerprint_for_a_new_type() -> None:
    class Celsius:
        def __init__(self, degrees: float) -> None:
            self.degrees = degrees

    @register_fingerprint(Celsius)
    def _celsius(value: Celsius, feed: Feed) -> None:
        feed.write_value(round(value.degrees, 1))

    assert fingerprint(Celsius(20.01)) == fingerprint(Celsius(20.04))
    assert fingerprint(Celsius(20.0)) != fingerprint(20.0)


# --- code fingerprints -------------------------------------------------------------------------------

BASE = '''
import json
import os
from os.path import join

SCALE = 3


def deep(x):
    return x + 1 + len(join("a", "b"))


def middle(x):
    return deep(x) * 2


def helper(x):
    """Scales."""
    return x * SCALE


def step(x):
    """The step."""
    return helper(x) + middle(x) + len(json.dumps(x)) + len(os.sep)
'''

COSMETIC = '''
import json
import os
from os.path import join
SCALE = 3  # the scale
def deep(x):   return x + 1 + len(join( "a", "b" ))
def middle(x):
    # twice
    return deep( x ) * 2
def helper(x):
    """Scales, documented differently."""
    return (x *
            SCALE)
def step(x):
    """A new docstring."""
    return helper(x) + middle(x) + len(json.dumps(x)) + len(os.sep)  # comment
'''


@pytest.fixture
def load(tmp_path: pathlib.Path) -> Iterator[Callable[..., ModuleType]]:
    """Import modules written to a fresh folder, so the same module names can hold new code."""
    names: set[str] = set()

    def load_files(files: dict[str, str], module: str) -> ModuleType:
        folder = tmp_path / f"v{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        for filename, source in files.items():
            (folder / filename).write_text(textwrap.dedent(source))
            names.add(filename.removesuffix(".py"))
        for name in names:
            sys.modules.pop(name, None)
        importlib.invalidate_caches()
        sys.path.insert(0, str(folder))
        try:
            return importlib.import_module(module)
        finally:
            sys.path.remove(str(folder))

    yield load_files
    for name in names:
        sys.modules.pop(name, None)


def changed_parts(before: CodeFingerprint, after: CodeFingerprint) -> set[str]:
    return {name for name, _ in set(before.parts) ^ set(after.parts)}


def test_code_ignores_comments_docstrings_and_formatting(load: Callable[..., ModuleType]) -> None:
    base = code_fingerprint(load({"flow_a.py": BASE}, "flow_a").step)
    cosmetic = code_fingerprint(load({"flow_a.py": COSMETIC}, "flow_a").step)
    assert base.digest == cosmetic.digest


def test_code_parts_name_user_code_only(load: Callable[..., ModuleType]) -> None:
    result = code_fingerprint(load({"flow_a.py": BASE}, "flow_a").step)
    assert result.root == "step"
    assert {name for name, _ in result.parts} == {"step", "helper", "middle", "deep", "SCALE"}
    assert result.parts == tuple(sorted(result.parts))
    assert result.digest != fingerprint(json.dumps)


@pytest.mark.parametrize(
    ("old", "new", "part"),
    [
        ("return x * SCALE", "return x * SCALE + 0", "helper"),
        ("return x + 1", "return x + 2", "deep"),
        ("SCALE = 3", "SCALE = 4", "SCALE"),
        ('"""The step."""', '"""The step."""\n    x = x - 1', "step"),
    ],
)
def test_code_change_moves_digest_and_names_the_part(
    load: Callable[..., ModuleType], old: str, new: str, part: str
) -> None:
    base = code_fingerprint(load({"flow_a.py": BASE}, "flow_a").step)
    changed = code_fingerprint(load({"flow_a.py": BASE.replace(old, new)}, "flow_a").step)
    assert base.digest != changed.digest
    assert changed_parts(base, changed) == {part}


def test_same_source_under_two_module_names(load: Callable[..., ModuleType]) -> None:
    first = load({"flow_a.py": BASE}, "flow_a")
    second = load({"flow_b.py": BASE}, "flow_b")
    assert first is not second
    assert code_fingerprint(first.step) == code_fingerprint(second.step)


def test_helper_reached_through_a_user_module(load: Callable[..., ModuleType]) -> None:
    main = "import utils\n\ndef step(x):\n    return utils.helper(x) + utils.LIMIT\n"
    utils = "LIMIT = 5\n\ndef helper(x):\n    return x\n\ndef unused(x):\n    return x\n"
    base = code_fingerprint(load({"flow_m.py": main, "utils.py": utils}, "flow_m").step)
    assert {name for name, _ in base.parts} == {"step", "helper", "LIMIT"}
    changed = code_fingerprint(
        load({"flow_m.py": main, "utils.py": utils.replace("return x\n\ndef unused", "return -x\n\ndef unused")}, "flow_m").step
    )
    assert changed_parts(base, changed) == {"helper"}


def test_mutual_recursion_terminates(load: Callable[..., ModuleType]) -> None:
    source = "def ping(n):\n    return pong(n - 1) if n else 0\n\ndef pong(n):\n    return ping(n)\n"
    result = code_fingerprint(load({"flow_r.py": source}, "flow_r").ping)
    assert {name for name, _ in result.parts} == {"ping", "pong"}


def test_classes_and_decorated_helpers(load: Callable[..., ModuleType]) -> None:
    source = '''
    import functools

    class Model:
        """Docs."""
        def fit(self, x):
            return x * 2

    @functools.lru_cache
    def cached(x):
        return x

    def step(x):
        return Model().fit(cached(x))
    '''
    base = code_fingerprint(load({"flow_c.py": source}, "flow_c").step)
    assert {name for name, _ in base.parts} == {"step", "Model", "cached"}
    changed = code_fingerprint(load({"flow_c.py": source.replace("x * 2", "x * 3")}, "flow_c").step)
    assert changed_parts(base, changed) == {"Model"}


class FakeStep:
    """Stands in for flowkit's step object: the user's function is reachable as ``fn``."""

    def __init__(self, fn: Callable[..., object]) -> None:
        self.fn = fn


def test_step_objects_are_unwrapped_and_root_decorators_ignored(load: Callable[..., ModuleType]) -> None:
    source = '''
    import functools

    def retry(times):
        def wrap(fn):
            @functools.wraps(fn)
            def call(*args):
                return fn(*args)
            return call
        return wrap

    @retry(TIMES)
    def step(x):
        return x
    '''
    module = load({"flow_d.py": source.replace("TIMES", "2")}, "flow_d")
    plain = code_fingerprint(module.step)
    assert plain.root == "step" and code_fingerprint(FakeStep(module.step)) == plain
    other_options = code_fingerprint(load({"flow_d.py": source.replace("TIMES", "3")}, "flow_d").step)
    assert other_options.digest == plain.digest


def test_closure_values_are_part_of_the_code() -> None:
    def make(factor: int) -> Callable[[int], int]:
        def scale(x: int) -> int:
            return x * factor

        return scale

    assert code_fingerprint(make(2)).digest == code_fingerprint(make(2)).digest
    assert code_fingerprint(make(2)).digest != code_fingerprint(make(3)).digest


def test_sourceless_functions_hash_their_bytecode() -> None:
    def compiled(source: str) -> Callable[..., object]:
        namespace: dict[str, object] = {}
        exec(source, namespace)  # noqa: S102 - a function without a source file is the case under test
        return namespace["f"]  # type: ignore[return-value]

    assert code_fingerprint(compiled("f = lambda x: x + 1")) == code_fingerprint(compiled("f = lambda x:   x + 1"))
    assert code_fingerprint(compiled("f = lambda x: x + 1")) != code_fingerprint(compiled("f = lambda x: x + 2"))


def test_code_fingerprint_is_computed_once_per_function() -> None:
    def step(x: int) -> int:
        return x

    assert code_fingerprint(step) is code_fingerprint(step)


PLAIN = '''
class Config:
    def __init__(self):
        self.tags = {"alpha", "beta", "gamma", "delta", "epsilon"}
        self.depth = 3
'''


def test_plain_objects_are_fingerprinted_by_their_data_across_processes_and_module_names(tmp_path) -> None:
    for name in ("plain_a", "plain_b"):
        (tmp_path / f"{name}.py").write_text(PLAIN)
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import importlib; from flowkit.keys.values import fingerprint;"
              "print(fingerprint(importlib.import_module(sys.argv[2]).Config()))")
    digests = {
        subprocess.run([sys.executable, "-c", script, str(tmp_path), module], env={**os.environ, "PYTHONHASHSEED": seed},
                       capture_output=True, text=True, check=True).stdout.strip()
        for module, seed in (("plain_a", "1"), ("plain_a", "2"), ("plain_b", "3"))
    }
    assert len(digests) == 1  # the same data in another process, hash seed or module: one digest


def test_a_plain_object_with_other_data_has_another_digest() -> None:
    class Box:
        def __init__(self, value):
            self.value = value

    class Reduced(Box):
        def __reduce__(self):
            return (Reduced, (self.value,))

    assert fingerprint(Box(1)) == fingerprint(Box(1)) != fingerprint(Box(2))
    assert fingerprint(Box(1)) != fingerprint(Reduced(1))  # a custom pickle still goes through dill


def test_a_plain_object_that_refers_to_itself_falls_back_to_its_pickle() -> None:
    class Node:
        def __init__(self):
            self.me = self

    first, second = Node(), Node()
    assert fingerprint(first) == fingerprint(second)
