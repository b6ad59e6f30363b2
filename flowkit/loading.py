"""Resolve a FLOW reference: ``path/to/file.py[:attr]`` or ``package.module[:attr]``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from flowkit.errors import LoadError

if TYPE_CHECKING:
    from flowkit.flow import Flow


def split_ref(ref: str) -> tuple[str, str | None]:
    """``"a/b.py:pipe"`` -> ``("a/b.py", "pipe")``; a Windows drive letter is not an attribute."""
    target, sep, attr = ref.rpartition(":")
    if not sep or not target or "/" in attr or "\\" in attr:
        return ref, None
    return target, attr or None


def is_file_ref(target: str) -> bool:
    return target.endswith(".py") or os.sep in target or "/" in target


def module_name(path: Path) -> str:
    """The file's stem, unless that would replace a standard module (a flow in ``json.py``) or
    flowkit itself: then a name of its own. The same in every process, as pickle needs."""
    stem = path.stem
    if stem in sys.stdlib_module_names or stem == "flowkit" or not stem.isidentifier():
        return "flowkit_flowfile_" + "".join(ch if ch.isalnum() else "_" for ch in stem)
    return stem


def import_file(path: Path) -> ModuleType:
    """Import a flow file by its stem, its folder first on sys.path so sibling helpers import too.

    The module is importable under the same name in other processes (run-step, workers), which
    dill needs to load objects of classes defined in it.
    """
    folder, name = str(path.parent), module_name(path)
    if sys.path[0] != folder:
        sys.path.insert(0, folder)
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, "__file__", None) and Path(existing.__file__).resolve() == path:
        return existing
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LoadError(f"cannot import {path}", hint="FLOW must be a Python file or module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_module(target: str) -> ModuleType:
    """The module a FLOW reference names, with a clear error when it does not exist."""
    if is_file_ref(target):
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise LoadError(f"flow file {target!r} does not exist", hint="FLOW is path/to/file.py[:attr] or package.module[:attr]")
        return import_file(path)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and target.startswith(exc.name):
            raise LoadError(f"no module named {target!r}",
                            hint="FLOW is path/to/file.py[:attr] or package.module[:attr], run from the project folder") from None
        raise


def flows_in(module: ModuleType) -> dict[str, "Flow"]:
    from flowkit.flow import Flow

    return {name: value for name, value in vars(module).items() if isinstance(value, Flow)}


def load_flow(ref: str) -> "Flow":
    """The Flow a reference names; without ``:attr`` the module's only flow."""
    from flowkit.flow import Flow

    target, attr = split_ref(ref)
    module = load_module(target)
    found = flows_in(module)
    if attr is None:
        if len(found) == 1:
            return next(iter(found.values()))
        if not found:
            raise LoadError(f"{target!r} defines no flow", hint="decorate a function with @flowkit.flow")
        raise LoadError(f"{target!r} defines several flows: {', '.join(sorted(found))}",
                        hint=f"pick one: {target}:{sorted(found)[0]}")
    value = getattr(module, attr, None)
    if not isinstance(value, Flow):
        what = "does not exist" if value is None else f"is a {type(value).__name__}, not a flow"
        raise LoadError(f"{target}:{attr} {what}",
                        hint=f"flows in {target}: {', '.join(sorted(found)) or '(none)'}")
    return value


def canonical_ref(ref: str) -> tuple["Flow", str]:
    """The flow and a reference to it that works from any folder: an absolute file path and the
    attribute name, or the module and the attribute name."""
    target, _ = split_ref(ref)
    flow = load_flow(ref)
    module = load_module(target)
    attr = next(name for name, value in vars(module).items() if value is flow)
    base = str(Path(target).expanduser().resolve()) if is_file_ref(target) else target
    return flow, f"{base}:{attr}"
