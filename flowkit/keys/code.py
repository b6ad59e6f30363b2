"""The code part of a cache key: a step's AST plus every function, class and constant of the user's
own code it reaches through global names, transitively (SPEC §4).

Comments, docstrings, formatting and line numbers do not count; a helper's change does, and
``parts`` names it so that ``plan`` and ``explain`` can say which one changed. Standard library,
site-packages and flowkit itself are not the user's code.
"""

from __future__ import annotations

import ast
import collections
import dis
import functools
import inspect
import sys
import textwrap
import types
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs

from flowkit.authoring.user_code import is_user_path
from flowkit.errors import Unstable
from flowkit.keys.values import SIMPLE_TYPES, Feed, fingerprint, register_class_code, register_fingerprint, type_name

_MAX_CODE_OBJECTS = 5000  # functions and classes one step may reach
_MAX_UNWRAP = 16
_BUILTIN_MODULES = frozenset({"builtins", *sys.builtin_module_names})

@attrs.frozen
class CodeFingerprint:
    """The code part of a key, itemised so that ``explain`` can name the helper that changed."""

    digest: str
    parts: tuple[tuple[str, str], ...]
    root: str
    values: tuple[str, ...] = ()  # the parts that are values the code reads (constants, data), not code


_MISSING = object()


class _Witness:
    """What a walk read, so that a memo can tell cheaply whether it still holds: every global name it
    looked up and what it found, every function's code, defaults and closure, every class's body,
    and the data values it fingerprinted. In a notebook or REPL a helper is redefined under the same
    name, or a global dict is changed in place: the memo must notice both."""

    __slots__ = ("lookups", "attrs", "cells", "classes", "data")

    def __init__(self) -> None:
        self.lookups: list[tuple[Mapping[str, Any], str, Any]] = []  # namespace.get(name) is value
        self.attrs: list[tuple[Any, str, Any]] = []  # getattr(obj, attr) is value
        self.cells: list[tuple[Any, Any]] = []  # cell.cell_contents is value
        self.classes: list[tuple[type, list[tuple[str, Any]]]] = []  # vars(cls) holds the same items
        self.data: list[tuple[Any, str]] = []  # fingerprint(value) is still digest: data changes in place

    def holds(self) -> bool:
        """True while everything the walk read is as it was (identity checks; data re-fingerprinted)."""
        for namespace, name, value in self.lookups:
            if namespace.get(name, _MISSING) is not value:
                return False
        for obj, attr, value in self.attrs:
            if getattr(obj, attr, _MISSING) is not value:
                return False
        for cell, value in self.cells:
            if _cell_value(cell) is not value:
                return False
        for cls, items in self.classes:
            now = vars(cls)
            if len(now) != len(items) or any(now.get(key, _MISSING) is not item for key, item in items):
                return False
        for value, digest in self.data:
            try:
                if fingerprint(value) != digest:
                    return False
            except Unstable:
                return False
        return True


_CODE_CACHE: weakref.WeakKeyDictionary[Any, tuple[CodeFingerprint, _Witness]] = weakref.WeakKeyDictionary()
_ACTIVE: dict[int, str] = {}  # functions being walked now, so a value that holds one does not recurse


def code_fingerprint(func: Callable[..., Any]) -> CodeFingerprint:
    """Fingerprint a step's code and the user code and data it reaches. Memoised per function, and
    the memo is re-validated on every call (cheap identity checks), so an edited helper or global is
    seen in the same process: a notebook, a REPL, a script that runs a flow twice."""
    if id(func) in _ACTIVE:  # a value the walk fingerprints holds this very function
        return CodeFingerprint(fingerprint(("self", _ACTIVE[id(func)])), (), _ACTIVE[id(func)])
    memo = _CODE_CACHE.get(func)
    if memo is not None and memo[1].holds():
        return memo[0]
    target = _unwrap_chain(func)[-1]
    if not isinstance(target, (types.FunctionType, type)):
        raise Unstable(f"{type_name(target)} object has no Python source or bytecode to fingerprint")
    _ACTIVE[id(func)] = target.__qualname__
    try:
        walk = _CodeWalk()
        found = walk.run(func, target)
    finally:
        del _ACTIVE[id(func)]
    _CODE_CACHE[func] = (found, walk.witness)
    return found


@register_fingerprint(types.FunctionType, tag="function")
def _write_function(value: types.FunctionType, feed: Feed) -> None:
    """A function passed as a value is keyed by its code closure, like a step."""
    feed.write_text(code_fingerprint(value).digest)


def _class_code(cls: type) -> str | None:
    """The code digest of a user's class, for objects of it (``values.register_class_code``)."""
    return code_fingerprint(cls).digest if _is_user_code(cls) else None


register_class_code(_class_code)


class _CodeWalk:
    """One breadth-first walk over the user code a step reaches; cycle-safe and bounded."""

    def __init__(self) -> None:
        self.parts: dict[str, str] = {}
        self.queue: collections.deque[Any] = collections.deque()
        self.seen: dict[int, Any] = {}  # holds the objects too, so that no id is reused mid-walk
        self.witness = _Witness()
        self.sinks: set[str] = set()  # globals the function being visited only appends to
        self.values: set[str] = set()  # names of the parts that are values

    def run(self, outer: Any, root: Any) -> CodeFingerprint:
        """``root`` is the step's own function; ``outer`` what wraps it (the user's decorators), whose
        code counts too."""
        self.seen[id(root)] = root
        root_name = self._visit(root, is_root=True)
        if outer is not root:
            self._reach(getattr(outer, "__qualname__", "wrapper"), outer)
        while self.queue:
            self._visit(self.queue.popleft(), is_root=False)
        parts = tuple(sorted(self.parts.items()))
        return CodeFingerprint(digest=fingerprint((root_name, parts)), parts=parts, root=root_name,
                               values=tuple(sorted(self.values)))

    def _visit(self, obj: Any, is_root: bool) -> str:
        tree = _source_tree(obj, strip_decorators=is_root)
        self.sinks = set() if isinstance(obj, type) else _sink_names(obj.__code__)
        if isinstance(obj, type):
            self.witness.classes.append((obj, list(vars(obj).items())))
            digest, refs = _class_digest(obj, tree), _class_refs(obj, tree, self.witness)
        else:
            self.witness.attrs += [(obj, attr, getattr(obj, attr)) for attr in ("__code__", "__defaults__", "__kwdefaults__")]
            digest, refs = _function_digest(obj, tree), _function_refs(obj, self.witness)
        name = self._add(obj.__qualname__, digest)
        for ref_name, value in refs:
            self._reach(ref_name, value)
        return name

    def _reach(self, name: str, value: Any) -> None:
        """A constant becomes a part now; user functions and classes (and their wrappers) are queued;
        any other value a step reads (a dict, an array, an object, a partial) is data: a part by its
        fingerprint, re-checked on every use. Data that cannot be fingerprinted makes the step uncached."""
        if _is_simple(value):
            self.values.add(self._add(name, fingerprint(value)))
            return
        chain = _unwrap_chain(value)
        code = [obj for obj in chain if isinstance(obj, (types.FunctionType, type))]
        for obj in code:
            if id(obj) in self.seen or not _is_user_code(obj):
                continue
            if len(self.seen) >= _MAX_CODE_OBJECTS:
                raise Unstable(f"the code reaches more than {_MAX_CODE_OBJECTS} functions and classes")
            self.seen[id(obj)] = obj
            self.queue.append(obj)
        if isinstance(value, types.MethodType) and not isinstance(value.__self__, type):
            self._data(f"{name}.__self__", value.__self__)
        elif not code and _is_data(value) and name not in self.sinks:
            self._data(name, value)

    def _data(self, name: str, value: Any) -> None:
        try:
            digest = fingerprint(value)
        except Unstable as exc:
            raise Unstable(f"global {name!r}: {exc.reason}") from None
        self.witness.data.append((value, digest))
        self.values.add(self._add(name, digest))

    def _add(self, name: str, digest: str) -> str:
        """Record a part; a different object with the same name gets a numbered name."""
        unique, number = name, 1
        while self.parts.get(unique, digest) != digest:
            number += 1
            unique = f"{name}~{number}"
        self.parts[unique] = digest
        return unique


_NOT_DATA = (types.ModuleType, types.FunctionType, type, types.BuiltinFunctionType, types.MethodType,
             types.WrapperDescriptorType, types.MethodDescriptorType, types.GetSetDescriptorType,
             types.MemberDescriptorType, types.ClassMethodDescriptorType, staticmethod, classmethod, property)


def _is_data(value: Any) -> bool:
    """A value a step reads as data: not code, a module, or a descriptor of one; nor the typing
    constructs (``Any``, ``Optional``) and ``__future__`` flags that appear among globals. A callable
    object is data when it has state or is of the user's own class (whose code then counts)."""
    if isinstance(value, _NOT_DATA):
        return False
    if callable(value) and not (_has_state(value) or _is_user_code(type(value))):
        return False
    return getattr(type(value), "__module__", "") not in ("typing", "__future__", "typing_extensions")


def _has_state(value: Any) -> bool:
    """A callable with data of its own (a partial, an object with attributes); a builtin callable
    (``print``, a ufunc) has none of the user's."""
    return isinstance(value, functools.partial) or isinstance(getattr(value, "__dict__", None), dict) and bool(vars(value))


# Methods that put something into a container and give nothing back: a global used only through
# them (``CALLS.append(name)``) is where a step writes, not what it reads, so it is not in the key.
_SINK_METHODS = frozenset({"append", "extend", "add", "insert", "update", "clear", "remove", "discard",
                           "appendleft", "extendleft"})


def _sink_names(code: types.CodeType) -> set[str]:
    """Globals that the code (and the code nested in it) only ever calls a sink method on."""
    loads: collections.Counter[str] = collections.Counter()
    sinks: collections.Counter[str] = collections.Counter()
    pending = [code]
    while pending:
        current = pending.pop()
        pending += [const for const in current.co_consts if isinstance(const, types.CodeType)]
        instructions = list(dis.get_instructions(current))
        for here, after in zip(instructions, instructions[1:] + [None]):
            if here.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                loads[here.argval] += 1
                if after is not None and after.opname in ("LOAD_METHOD", "LOAD_ATTR") and after.argval in _SINK_METHODS:
                    sinks[here.argval] += 1
    return {name for name, count in sinks.items() if count == loads[name]}


def _is_code(value: Any) -> bool:
    """A function, or a method wrapper of one (staticmethod, classmethod, property)."""
    inner = getattr(value, "__func__", None) or getattr(value, "fget", None) or value
    return isinstance(inner, types.FunctionType)


def _cell_value(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # a cell not yet assigned
        return _MISSING


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
        # a function's own source: inspect.getsource(function) follows __wrapped__, which would give a
        # decorator's wrapper the source of the function it wraps
        if isinstance(obj, type):
            lines, start = inspect.getsourcelines(obj)
            if not _is_own_source(obj, inspect.getsourcefile(obj), start, start + len(lines)):
                return None
            source = "".join(lines)
        else:
            source = inspect.getsource(obj.__code__ if isinstance(obj, types.FunctionType) else obj)
        tree = ast.parse(textwrap.dedent(source))
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


def _is_own_source(cls: type, path: str | None, start: int, end: int) -> bool:
    """True when the class source inspect found is this class's: inspect finds a class by name in
    its module's file, so a class redefined since (in a notebook cell, by exec) would get the old
    text. Its methods' code says where it really is; a class without methods is keyed by members."""
    codes = [method.__code__ for method in _methods(cls)]
    return bool(codes) and all(code.co_filename == path and start <= code.co_firstlineno < end for code in codes)


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
    members: list[tuple[str, Any]] = []
    for name, value in sorted(vars(cls).items()):
        function = getattr(value, "__func__", value)
        if isinstance(function, types.FunctionType):
            members.append((name, _function_digest(function, _source_tree(function, strip_decorators=False))))
        elif _is_simple(value) and name not in ("__module__", "__qualname__", "__doc__"):
            members.append((name, value))
    return fingerprint(("members", tuple(base.__qualname__ for base in cls.__bases__), tuple(members)))


def _function_refs(func: types.FunctionType, witness: _Witness) -> Iterator[tuple[str, Any]]:
    """Globals the function reads by name, and the values its closure captured."""
    yield from _resolve(_code_names(func.__code__), func.__globals__, witness)
    for name, cell in zip(func.__code__.co_freevars, func.__closure__ or ()):
        value = _cell_value(cell)
        witness.cells.append((cell, value))
        if value is not _MISSING:
            yield f"{func.__qualname__}.{name}", value


def _class_refs(cls: type, tree: ast.AST | None, witness: _Witness) -> Iterator[tuple[str, Any]]:
    """Base classes, class attributes, and globals read by the methods or named in the class body."""
    for base in cls.__bases__:
        yield base.__qualname__, base
    for name, value in vars(cls).items():  # the AST cannot see `Cls.attr = 2` or a class dict changed in place
        if not (name.startswith("__") and name.endswith("__")) and not _is_code(value):
            yield f"{cls.__qualname__}.{name}", value
    methods = _methods(cls)
    module = sys.modules.get(cls.__module__)
    namespace = vars(module) if module is not None else collections.ChainMap(*(m.__globals__ for m in methods))
    names = dict.fromkeys(name for method in methods for name in _code_names(method.__code__))
    if tree is not None:
        names.update(dict.fromkeys(_tree_names(tree)))
    yield from _resolve(list(names), namespace, witness)


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


def _resolve(names: list[str], namespace: Mapping[str, Any], witness: _Witness) -> Iterator[tuple[str, Any]]:
    """Look the names up (and remember what was found, or that nothing was); a user module
    contributes those of its attributes that the code names."""
    modules: set[int] = set()
    for name in names:
        value = namespace.get(name, _MISSING)
        witness.lookups.append((namespace, name, value))
        if value is not _MISSING:
            yield from _through_modules(name, value, names, modules, witness)


def _through_modules(name: str, value: Any, names: list[str], modules: set[int],
                     witness: _Witness) -> Iterator[tuple[str, Any]]:
    if not isinstance(value, types.ModuleType):
        yield name, value
        return
    if id(value) in modules or not _is_user_code(value):
        return
    modules.add(id(value))
    namespace = vars(value)
    for attr in names:
        found = namespace.get(attr, _MISSING)
        witness.lookups.append((namespace, attr, found))
        if found is not _MISSING:
            yield from _through_modules(attr, found, names, modules, witness)


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
    return is_user_path(path)


# -- the normalized source behind each code part, for `explain` to show what changed -----------------


class _SourceWalk(_CodeWalk):
    """The key's walk, keeping each code part's normalized text beside its digest: the tree its
    digest is made from (docstrings dropped, the root's decorators too), printed back, so comments
    and formatting are gone. Each text is checked against the digest it stands for: a file edited
    between the two reads is left out."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: dict[str, tuple[str, str]] = {}

    def _visit(self, obj: Any, is_root: bool) -> str:
        name = super()._visit(obj, is_root)
        tree = _source_tree(obj, strip_decorators=is_root)
        if tree is not None:
            digest = _class_digest(obj, tree) if isinstance(obj, type) else _function_digest(obj, tree)
            if digest == self.parts[name]:
                self.texts[name] = (digest, ast.unparse(tree))
        return name


def code_sources(func: Callable[..., Any]) -> dict[str, tuple[str, str]]:
    """Part name -> (digest, normalized source) for every function and class in ``func``'s code
    part; value parts and code without source are left out. A walk of its own that leaves the memo
    of ``code_fingerprint`` alone: the store asks for it only when a digest is new to it. Raises
    ``Unstable`` where ``code_fingerprint`` would."""
    target = _unwrap_chain(func)[-1]
    if not isinstance(target, (types.FunctionType, type)) or id(func) in _ACTIVE:
        return {}
    _ACTIVE[id(func)] = target.__qualname__
    try:
        walk = _SourceWalk()
        walk.run(func, target)
    finally:
        del _ACTIVE[id(func)]
    return walk.texts
