"""The code part of a cache key: a step's AST plus every function, class and constant of the user's
own code it reaches through global names, transitively (SPEC §4).

Comments, docstrings, formatting and line numbers do not count; a helper's change does, and
``parts`` names it so that ``plan`` and ``explain`` can say which one changed. Standard library,
site-packages and flowkit itself are not the user's code.
"""

from __future__ import annotations

import ast
import collections
import functools
import inspect
import os
import sys
import sysconfig
import textwrap
import types
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs

from flowkit.errors import Unstable
from flowkit.keys.values import SIMPLE_TYPES, Feed, fingerprint, register_fingerprint, type_name

_MAX_CODE_OBJECTS = 5000  # functions and classes one step may reach
_MAX_UNWRAP = 16
_BUILTIN_MODULES = frozenset({"builtins", *sys.builtin_module_names})

@attrs.frozen
class CodeFingerprint:
    """The code part of a key, itemised so that ``explain`` can name the helper that changed."""

    digest: str
    parts: tuple[tuple[str, str], ...]
    root: str


_CODE_CACHE: weakref.WeakKeyDictionary[Any, CodeFingerprint] = weakref.WeakKeyDictionary()


def code_fingerprint(func: Callable[..., Any]) -> CodeFingerprint:
    """Fingerprint a step's code and the user code it reaches; cached, as every node of a step shares it."""
    target = _unwrap_chain(func)[-1]
    if not isinstance(target, (types.FunctionType, type)):
        raise Unstable(f"{type_name(target)} object has no Python source or bytecode to fingerprint")
    cached = _CODE_CACHE.get(target)
    if cached is None:
        cached = _CodeWalk().run(target)
        _CODE_CACHE[target] = cached
    return cached


@register_fingerprint(types.FunctionType, tag="function")
def _write_function(value: types.FunctionType, feed: Feed) -> None:
    """A function passed as a value is keyed by its code closure, like a step."""
    feed.write_text(code_fingerprint(value).digest)


class _CodeWalk:
    """One breadth-first walk over the user code a step reaches; cycle-safe and bounded."""

    def __init__(self) -> None:
        self.parts: dict[str, str] = {}
        self.queue: collections.deque[Any] = collections.deque()
        self.seen: dict[int, Any] = {}  # holds the objects too, so that no id is reused mid-walk

    def run(self, root: Any) -> CodeFingerprint:
        self.seen[id(root)] = root
        root_name = self._visit(root, is_root=True)
        while self.queue:
            self._visit(self.queue.popleft(), is_root=False)
        parts = tuple(sorted(self.parts.items()))
        return CodeFingerprint(digest=fingerprint((root_name, parts)), parts=parts, root=root_name)

    def _visit(self, obj: Any, is_root: bool) -> str:
        tree = _source_tree(obj, strip_decorators=is_root)
        if isinstance(obj, type):
            digest, refs = _class_digest(obj, tree), _class_refs(obj, tree)
        else:
            digest, refs = _function_digest(obj, tree), _function_refs(obj)
        name = self._add(obj.__qualname__, digest)
        for ref_name, value in refs:
            self._reach(ref_name, value)
        return name

    def _reach(self, name: str, value: Any) -> None:
        """A constant becomes a part now; user functions and classes (and their wrappers) are queued."""
        if _is_simple(value):
            self._add(name, fingerprint(value))
            return
        for obj in _unwrap_chain(value):
            if id(obj) in self.seen or not isinstance(obj, (types.FunctionType, type)) or not _is_user_code(obj):
                continue
            if len(self.seen) >= _MAX_CODE_OBJECTS:
                raise Unstable(f"the code reaches more than {_MAX_CODE_OBJECTS} functions and classes")
            self.seen[id(obj)] = obj
            self.queue.append(obj)

    def _add(self, name: str, digest: str) -> str:
        """Record a part; a different object with the same name gets a numbered name."""
        unique, number = name, 1
        while self.parts.get(unique, digest) != digest:
            number += 1
            unique = f"{name}~{number}"
        self.parts[unique] = digest
        return unique


def _unwrap_chain(obj: Any) -> list[Any]:
    """The object and everything it wraps: a user's own decorator is user code too."""
    chain = [obj]
    while len(chain) <= _MAX_UNWRAP:
        inner = _unwrap_once(chain[-1])
        if inner is None:
            break
        chain.append(inner)
    return chain


def _unwrap_once(obj: Any) -> Any:
    if isinstance(obj, types.MethodType):
        return obj.__func__
    inner = getattr(obj, "__wrapped__", None)
    if inner is None and not isinstance(obj, (types.FunctionType, type, types.ModuleType)):
        fn = getattr(obj, "fn", None)
        inner = fn if callable(fn) else None
    return inner


def _is_simple(value: object) -> bool:
    if isinstance(value, (tuple, frozenset)):
        return all(_is_simple(item) for item in value)
    return isinstance(value, SIMPLE_TYPES)


def _source_tree(obj: Any, strip_decorators: bool) -> ast.AST | None:
    """The parsed source without docstrings (and without the root's decorators: step options are keyed apart)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
    except (OSError, TypeError, SyntaxError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            node.body = _without_docstring(node.body)
    if strip_decorators:
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                node.decorator_list = []
    return tree


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return body[1:]
    return body


def _function_digest(func: types.FunctionType, tree: ast.AST | None) -> str:
    """AST when there is source, bytecode otherwise; plus simple defaults, which the body's names miss."""
    code: object = ("ast", ast.dump(tree)) if tree is not None else ("bytecode", func.__code__)
    defaults = [value for value in func.__defaults__ or () if _is_simple(value)]
    keyword_defaults = sorted((k, v) for k, v in (func.__kwdefaults__ or {}).items() if _is_simple(v))
    return fingerprint((code, tuple(defaults), tuple(keyword_defaults)))


def _class_digest(cls: type, tree: ast.AST | None) -> str:
    """AST when there is source; otherwise method bytecode and simple class attributes."""
    if tree is not None:
        return fingerprint(("ast", ast.dump(tree)))
    members = []
    for name, value in sorted(vars(cls).items()):
        function = getattr(value, "__func__", value)
        if isinstance(function, types.FunctionType):
            members.append((name, function.__code__))
        elif _is_simple(value) and name not in ("__module__", "__qualname__", "__doc__"):
            members.append((name, value))
    return fingerprint(("members", tuple(base.__qualname__ for base in cls.__bases__), tuple(members)))


def _function_refs(func: types.FunctionType) -> Iterator[tuple[str, Any]]:
    """Globals the function reads by name, and the values its closure captured."""
    yield from _resolve(_code_names(func.__code__), func.__globals__)
    for name, cell in zip(func.__code__.co_freevars, func.__closure__ or ()):
        try:
            value = cell.cell_contents
        except ValueError:  # a cell not yet assigned
            continue
        yield f"{func.__qualname__}.{name}", value


def _class_refs(cls: type, tree: ast.AST | None) -> Iterator[tuple[str, Any]]:
    """Base classes, and globals read by the methods or named anywhere in the class body."""
    for base in cls.__bases__:
        yield base.__qualname__, base
    methods = _methods(cls)
    module = sys.modules.get(cls.__module__)
    namespace = vars(module) if module is not None else collections.ChainMap(*(m.__globals__ for m in methods))
    names = dict.fromkeys(name for method in methods for name in _code_names(method.__code__))
    if tree is not None:
        names.update(dict.fromkeys(_tree_names(tree)))
    yield from _resolve(list(names), namespace)


def _methods(cls: type) -> list[types.FunctionType]:
    """Functions in the class body, including those inside staticmethod, classmethod and property."""
    found = []
    for attr in vars(cls).values():
        for candidate in (attr, *(getattr(attr, key, None) for key in ("__func__", "fget", "fset", "fdel"))):
            if isinstance(candidate, types.FunctionType):
                found.append(candidate)
    return found


def _code_names(code: types.CodeType) -> list[str]:
    """Global and attribute names read by the code and by the functions nested in it, in order."""
    names = dict.fromkeys(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.update(dict.fromkeys(_code_names(const)))
    return list(names)


def _tree_names(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Attribute):
            yield node.attr


def _resolve(names: list[str], namespace: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """Look the names up; a user module contributes those of its attributes that the code names."""
    modules: set[int] = set()
    for name in names:
        if name in namespace:
            yield from _through_modules(name, namespace[name], names, modules)


def _through_modules(name: str, value: Any, names: list[str], modules: set[int]) -> Iterator[tuple[str, Any]]:
    if not isinstance(value, types.ModuleType):
        yield name, value
        return
    if id(value) in modules or not _is_user_code(value):
        return
    modules.add(id(value))
    for attr in names:
        if attr in vars(value):
            yield from _through_modules(attr, vars(value)[attr], names, modules)


def _is_user_code(obj: Any) -> bool:
    """Code the step's author wrote: not builtins, the standard library, site-packages or flowkit."""
    module_name = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
    if isinstance(module_name, str) and (module_name in _BUILTIN_MODULES or module_name.partition(".")[0] == "flowkit"):
        return False
    module = obj if isinstance(obj, types.ModuleType) else sys.modules.get(module_name or "")
    code = getattr(obj, "__code__", None)
    namespace_path = next(iter(getattr(module, "__path__", None) or ()), None)  # a package without __init__
    path = getattr(module, "__file__", None) or namespace_path or getattr(code, "co_filename", None)
    if not path:
        return module is None or module_name == "__main__"
    if path.startswith("<"):
        return not path.startswith("<frozen")
    return _is_user_path(path)


@functools.lru_cache(maxsize=4096)
def _is_user_path(path: str) -> bool:
    real = os.path.realpath(path)
    if {"site-packages", "dist-packages"} & set(real.split(os.sep)):
        return False
    return not any(real == root or real.startswith(root + os.sep) for root in _library_roots())


@functools.cache
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple({os.path.realpath(paths[key]) for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths})
