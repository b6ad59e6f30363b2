"""The files a Python script runs: the script and every user module it imports, transitively.

``fk.steps.script`` keys a step by these files' bytes, so editing a helper the script imports
re-runs it. Imports are read from the source with ``ast`` (the script is never run to find
them): ``import a.b``, ``from a import b``, ``from . import c`` inside packages, a star import
(every module of that package counts), and ``importlib.import_module("literal")`` /
``__import__("literal")``. An import built at run time from a variable is not seen.

Names are looked up the way the script's own interpreter will: the script's folder first, then
``PYTHONPATH`` and this interpreter's ``sys.path``, then import hooks (editable installs). Where
this process cannot tell which of several files the script will get, all of them count: an
extra file can only cost a re-run, a missing one could give a stale hit. The standard library,
site-packages and flowkit are not the user's code and are left out, as in step keys (SPEC §4).
"""

from __future__ import annotations

import ast
import collections
import functools
import importlib.machinery
import os
import sys
from collections.abc import Iterator

import blake3

from flowkit.authoring.user_code import is_user_path

MAX_FILES = 5000  # user modules one script may reach
_LOADERS = (
    (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
    (importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES),
    (importlib.machinery.SourcelessFileLoader, importlib.machinery.BYTECODE_SUFFIXES),
)
_STANDARD_FINDERS = (importlib.machinery.BuiltinImporter, importlib.machinery.FrozenImporter,
                     importlib.machinery.PathFinder)
Manifest = tuple[tuple[str, str], ...]


def script_manifest(script: str) -> Manifest:
    """``(module name, BLAKE3 of the file)`` for the script (named ``__main__``) and each user
    module it reaches, sorted. Names, not paths: the same code elsewhere gives the same manifest.
    Raises ``OSError`` when the script cannot be read."""
    return _Scan(script).run()


@functools.lru_cache(maxsize=2048)
def _references(data: bytes) -> tuple[tuple[int, str, tuple[str, ...]], ...]:
    """What a module's source imports, as ``(level, module, names)``; pure in the bytes, so kept
    per content. Source that does not parse imports nothing (running it fails anyway)."""
    try:
        tree = ast.parse(data)
    except (SyntaxError, ValueError):
        return ()
    found: list[tuple[int, str, tuple[str, ...]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(0, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or "", tuple(alias.name for alias in node.names)))
        elif isinstance(node, ast.Call) and (literal := _literal_import(node)) is not None:
            found.append((0, literal, ()))
    return tuple(found)


def _literal_import(call: ast.Call) -> str | None:
    """The module of ``importlib.import_module("x")`` or ``__import__("x")``, when it is a literal."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name not in ("import_module", "__import__") or not call.args:
        return None
    first = call.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value[:1] not in ("", "."):
        return first.value
    return None  # a name made at run time, or relative to a package argument: not followed


class _Scan:
    """One walk from a script over the user modules it imports; files are read once each."""

    def __init__(self, script: str) -> None:
        self.script = os.path.abspath(script)
        self.search = _search_path(os.path.dirname(self.script))
        self.finders: dict[str, importlib.machinery.FileFinder] = {}
        self.found: dict[str, list[importlib.machinery.ModuleSpec]] = {}  # module name -> its candidates
        self.queue: collections.deque[tuple[str, str, str | None]] = collections.deque()
        self.done: set[tuple[str, str]] = set()
        self.manifest: set[tuple[str, str]] = set()

    def run(self) -> Manifest:
        self.queue.append(("__main__", self.script, None))
        while self.queue:
            name, path, package = self.queue.popleft()
            with open(path, "rb") as handle:
                data = handle.read()
            self.manifest.add((name, blake3.blake3(data).hexdigest()))
            if path.endswith(tuple(importlib.machinery.SOURCE_SUFFIXES)):
                for module in self._imported(_references(data), package):
                    self._reach(module)
        return tuple(sorted(self.manifest))

    def _imported(self, refs: tuple[tuple[int, str, tuple[str, ...]], ...], package: str | None) -> Iterator[str]:
        """Every module name the references make Python import (parents first: ``a``, ``a.b``)."""
        for level, module, names in refs:
            base = _absolute(level, module, package)
            if base is None:
                continue
            yield from _prefixes(base)
            for name in names:
                if name == "*":
                    yield from self._submodules(base)
                else:
                    yield f"{base}.{name}"  # a submodule, when it resolves to one (else an attribute)

    def _reach(self, module: str) -> None:
        for spec in self._candidates(module):
            if spec.origin and spec.has_location and (module, spec.origin) not in self.done:
                if len(self.done) >= MAX_FILES:
                    raise RuntimeError(f"the script reaches more than {MAX_FILES} user modules")
                self.done.add((module, spec.origin))
                package = module if spec.submodule_search_locations is not None else module.rpartition(".")[0]
                self.queue.append((module, spec.origin, package or None))

    def _candidates(self, module: str) -> list[importlib.machinery.ModuleSpec]:
        """The specs this name may resolve to in the script's interpreter, user code only (memoised)."""
        if module not in self.found:
            self.found[module] = [spec for spec in self._resolve(module)
                                  if spec.origin is None or not spec.has_location or is_user_path(spec.origin)]
        return self.found[module]

    def _resolve(self, module: str) -> list[importlib.machinery.ModuleSpec]:
        parent, _, _ = module.rpartition(".")
        if parent:
            locations = [loc for spec in self._candidates(parent) for loc in spec.submodule_search_locations or ()]
            return [spec for loc in locations if (spec := self._find(loc, module)) is not None]
        if (module in sys.builtin_module_names or module == "flowkit"
                or importlib.machinery.FrozenImporter.find_spec(module) is not None):
            return []
        specs: list[importlib.machinery.ModuleSpec] = []
        for index, entry in enumerate(self.search):
            spec = self._find(entry, module)
            if spec is None:
                continue
            if spec.origin is not None and spec.has_location and not is_user_path(spec.origin):
                break  # the standard library or site-packages: it shadows every later folder
            specs.append(spec)
            if index == 0 and spec.origin is not None and spec.has_location:
                return specs  # the script's own folder comes first: this is the one it gets
        return specs or _from_hooks(module)

    def _find(self, directory: str, module: str) -> importlib.machinery.ModuleSpec | None:
        """``module`` in one folder, found as the import system finds it (a fresh finder per scan:
        the import system's own may hold a listing from before a file was added)."""
        finder = self.finders.get(directory)
        if finder is None:
            finder = self.finders[directory] = importlib.machinery.FileFinder(directory, *_LOADERS)
        return finder.find_spec(module)

    def _submodules(self, package: str) -> Iterator[str]:
        """For ``from package import *``: every module in the package's folders may be imported."""
        for spec in self._candidates(package):
            for location in spec.submodule_search_locations or ():
                for entry in sorted(os.listdir(location)) if os.path.isdir(location) else ():
                    stem, dot, suffix = entry.partition(".")
                    if (dot and stem.isidentifier() and stem != "__init__"
                            and f".{suffix}" in importlib.machinery.SOURCE_SUFFIXES):
                        yield f"{package}.{stem}"


def _absolute(level: int, module: str, package: str | None) -> str | None:
    """The absolute name of ``from <level dots><module> import ...``; None when it cannot resolve."""
    if not level:
        return module or None
    if not package:
        return None  # a relative import in the script itself fails when it runs
    parts = package.split(".")
    if level - 1 >= len(parts):
        return None
    base = ".".join(parts[: len(parts) - (level - 1)])
    return f"{base}.{module}" if module else base


def _prefixes(name: str) -> Iterator[str]:
    parts = name.split(".")
    for end in range(1, len(parts) + 1):
        yield ".".join(parts[:end])


def _search_path(script_dir: str) -> list[str]:
    """Folders in the order the script's interpreter searches them, as near as this process can
    tell: the script's folder, ``PYTHONPATH``, then this process's ``sys.path`` (a superset)."""
    extra = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    entries = [script_dir, *extra, *sys.path]  # in sys.path (only) "" is the working directory
    seen: dict[str, None] = {}
    for entry in entries:
        folder = os.path.abspath(entry or os.curdir)
        if os.path.isdir(folder):
            seen.setdefault(folder)
    return list(seen)


def _from_hooks(module: str) -> list[importlib.machinery.ModuleSpec]:
    """A top-level name no folder has: the import hooks an editable install adds may map it."""
    found = []
    for finder in sys.meta_path:
        if finder in _STANDARD_FINDERS or not hasattr(finder, "find_spec"):
            continue
        spec = finder.find_spec(module, None)
        if spec is not None:
            found.append(spec)
    return found
