"""Resolve a FLOW reference: ``path/to/file.py[:attr]`` or ``package.module[:attr]``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Callable, TypeVar

from flowkit.errors import FlowkitError, LoadError

if TYPE_CHECKING:
    from flowkit.flow import Flow

T = TypeVar("T")


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
        import_user_code(str(path), lambda: spec.loader.exec_module(module))  # type: ignore[union-attr]
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def import_user_code(what: str, run: Callable[[], T]) -> T:
    """``run()``, which imports the user's code: a syntax error or an exception it raises becomes a
    LoadError showing the user's own file, line and traceback, without flowkit's and importlib's
    frames. flowkit's own errors (a bad step option) already say what is wrong and pass as they are."""
    try:
        return run()
    except FlowkitError:
        raise
    except SyntaxError as exc:
        raise LoadError(_syntax_message(what, exc)) from None
    except Exception as exc:  # not KeyboardInterrupt or SystemExit: those mean what they say
        raise LoadError(f"flow {_kind(what)} {what} raised {type(exc).__name__} while importing: {exc}\n"
                        + user_traceback(exc).rstrip()) from None


def _kind(what: str) -> str:
    return "file" if is_file_ref(what) else "module"


def _syntax_message(what: str, exc: SyntaxError) -> str:
    """``flow file F, line N: SyntaxError: MSG`` and the offending line: two lines. A syntax error
    in a module the flow file imports names that module's file too."""
    where = f", line {exc.lineno}" if exc.lineno else ""
    if exc.filename and not _same_file(exc.filename, what):
        where = f": {exc.filename}{where}"
    message = f"flow {_kind(what)} {what}{where}: {type(exc).__name__}: {exc.msg}"
    text = (exc.text or "").strip()
    return f"{message}\n    {text}" if text else message


def _same_file(filename: str, what: str) -> bool:
    try:
        return Path(filename).resolve() == Path(what).resolve()
    except OSError:
        return False


_LOADERS = (str(Path(__file__).resolve()), os.path.dirname(importlib.__file__) + os.sep)  # this file, importlib/


def _frozen(filename: str) -> bool:
    return filename.startswith("<frozen importlib")


def _loader_frame(filename: str) -> bool:
    return _frozen(filename) or filename.startswith(_LOADERS)


def user_traceback(exc: BaseException) -> str:
    """The traceback of an exception raised while importing the user's code: from the user's first
    frame on (this loader's frames dropped), and without importlib's frames (nested imports)."""
    tb = exc.__traceback__
    while tb is not None and _loader_frame(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    shown = traceback.TracebackException(type(exc), exc, tb)
    shown.stack = traceback.StackSummary.from_list([f for f in shown.stack if not _frozen(f.filename)])
    return "".join(shown.format())


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
        found = bool(target) and not target.startswith(".") and importlib.util.find_spec(target) is not None
    except ImportError:  # a parent package that does not exist
        found = False
    except Exception:  # importing a parent package raised: importing the module shows the user's error
        found = True
    if not found:
        raise LoadError(f"no module named {target!r}",
                        hint="FLOW is path/to/file.py[:attr] or package.module[:attr], run from the project folder")
    return import_user_code(target, lambda: importlib.import_module(target))


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
