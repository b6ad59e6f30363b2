"""Prebuilt steps (SPEC §10), as ``fk.steps``: run a Python script, run a command, copy data.

Each call records a node in a flow body (and runs at once outside one, like any step). Keys:

- ``script(path, ...)``: the BYTES of the script and of every user module it imports,
  transitively (found with ``ast``, never by running it; see ``script_imports``), read each
  time the key is computed. Bytes, not an AST: a comment-only edit re-runs the script. The data
  files it opens are not seen: pass them as ``fk.File`` in ``args`` to key them by content.
- ``shell(command, ...)``: the command's text and its arguments; the programs it runs are the
  step's environment (``image``), not its content: pass a script it runs as ``fk.File``.
- ``copy(src, dst)``: the source's content. A hit means "nothing to do": the key can only be had
  while the destination already holds the source's content, so a destination deleted or changed
  since makes the step run again (the plan says why). The first copy is therefore recorded by the
  run after it, which finds the destination up to date and transfers nothing.

The key material is a value (``ScriptSource``, ``CopySource``) whose pickle, which flowkit
fingerprints for objects of no registered type (SPEC §4), is made from the files' current
content each time. Where it cannot be had the step runs uncached, never from a stale entry.
"""

from __future__ import annotations

import functools
import os
import sys
import types
from collections.abc import Callable, Sequence
from typing import Any

from flowkit.authoring import copying
from flowkit.authoring.commands import (Arguments, CommandFailed, Copied, OutputFile, clear_outputs, read_outputs,
                                        run_program, step_label, text_error)
from flowkit.authoring.step import Step, current_recorder, step
from flowkit.errors import FlowDefinitionError

__all__ = ["CommandFailed", "Copied", "OutputFile", "copy", "script", "shell"]

Outputs = str | tuple[str, ...] | None


def script(path: str | os.PathLike[str], args: Sequence[Any] = (), outputs: str | Sequence[str] | None = None,
           **options: Any) -> Any:
    """Run a Python script as a step: ``sys.executable path *args`` in the working directory.

    ``args``: text, numbers, paths, ``fk.File`` (keyed by content) and step outputs or flow
    parameters (passed as their text). ``outputs``: the files it writes, relative to the working
    directory; they are removed before it runs and returned by content: one ``OutputFile`` for a
    name, a dict name -> ``OutputFile`` for a list; without outputs, its stdout text. The node is
    named after the script (``train.py`` -> ``train``, ``train-2``, ...); ``name=`` and the other
    step options (``retries``, ``timeout``, ``env``, ``image``, ...) are taken as keywords.
    """
    source = _script_source(path)
    the_step = _options(_script_step(_stem(source.path)), options, "script")
    kwargs = {"script": source, "args": _checked_args(args, "script"), "outputs": _checked_outputs(outputs, "script")}
    _outputs_not_inputs(kwargs["args"], kwargs["outputs"], "script")
    recorder = current_recorder()  # recorded from here, so that the node's call site is the flow body's line
    return the_step.fn(**kwargs) if recorder is None else recorder.record(the_step, (), kwargs)


def shell(command: str | Sequence[Any], args: Sequence[Any] = (), outputs: str | Sequence[str] | None = None,
          **options: Any) -> Any:
    """Run a command as a step: a string runs with ``bash -c`` (``args`` are then ``$1``, ``$2``,
    ...: quote them as ``"$1"`` and nothing in them is read as shell syntax), a list runs as it is.

    Items of a list and ``args`` may be step outputs or flow parameters, passed as their text.
    Returns the command's stdout text, or its declared ``outputs`` as ``script`` does.
    """
    if isinstance(command, str):
        if not command.strip():
            raise FlowDefinitionError("fk.steps.shell: the command is empty", hint='e.g. fk.steps.shell("ls -l")')
        argv: list[Any] = ["bash", "-c", command, "flowkit-shell"]
    elif isinstance(command, (list, tuple)) and command:
        argv = list(command)
    else:
        raise FlowDefinitionError(f"fk.steps.shell: the command must be a string or a non-empty list, got {command!r}",
                                  hint='e.g. fk.steps.shell("wc -l data.csv") or fk.steps.shell(["wc", "-l", path])')
    the_step = _options(_named_step(_run_shell, "shell"), options, "shell")
    kwargs = {"command": _checked_args([*argv, *_sequence(args, "shell", "args")], "shell", "command"),
              "outputs": _checked_outputs(outputs, "shell")}
    _outputs_not_inputs(kwargs["command"], kwargs["outputs"], "shell")
    recorder = current_recorder()
    return the_step.fn(**kwargs) if recorder is None else recorder.record(the_step, (), kwargs)


def copy(source: Any, destination: Any, **options: Any) -> Any:
    """Copy a file or a folder from one place fsspec reaches to another (a path, ``file://``,
    ``memory://``, ``s3://`` with s3fs installed, ...); returns ``Copied(uri, digest, size)``.

    With both given as text it is cached while the destination holds the source's content; both
    are read in full to tell (twice per key), so for large remote data where that costs more than
    the copy, pass ``cache=False``. When either is a step output or a flow parameter, what to
    compare is known only as the step runs: it then always runs (``cache`` is off) and copies.
    The destination is the full target path (a folder's files go under it).
    """
    for what, value in (("source", source), ("destination", destination)):
        text = isinstance(value, str) and bool(value) and "\0" not in value
        if not (text or isinstance(value, os.PathLike) or _is_handle(value)):
            raise FlowDefinitionError(f"fk.steps.copy: the {what} must be a path or URI, got {value!r}",
                                      hint='e.g. fk.steps.copy("data/raw.csv", "memory://raw.csv")')
    known = not (_is_handle(source) or _is_handle(destination))
    if not known:
        if options.get("cache"):
            raise FlowDefinitionError(
                "fk.steps.copy: cache=True needs the source and destination as text",
                hint="a copy from or to a value known only at run time cannot check its destination")
        options = {**options, "cache": False}
    the_step = _options(_named_step(_run_copy, "copy"), options, "copy")
    if known:
        source, destination = os.fspath(source), os.fspath(destination)
    # with cache=False nothing is read to make a key no one looks up
    check = CopySource(source, destination) if known and the_step.opts.cache else None
    kwargs = {"source": source, "destination": destination, "check": check}
    recorder = current_recorder()
    return the_step.fn(**kwargs) if recorder is None else recorder.record(the_step, (), kwargs)


# --- the key material ----------------------------------------------------------------------------


class ScriptSource:
    """The script a step runs. Fingerprinted (``keys.prebuilt``) by the manifest of the script's
    bytes and of every user module it imports, made when the key is computed: a helper edited or
    newly imported since the flow was built is seen. Names, not paths, enter the key, so the same
    code in another folder or on another machine has the same key."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __copy__(self) -> "ScriptSource":
        return self

    def __deepcopy__(self, memo: Any) -> "ScriptSource":
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ScriptSource) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"<script {_shown(self.path)}>"


class CopySource:
    """The source of a copy, fingerprinted (``keys.prebuilt``) by its content, and only while the
    destination holds that content too: otherwise fingerprinting fails, so the step runs uncached
    and copies. A cache hit of a copy therefore always means the destination is up to date."""

    __slots__ = ("source", "destination")

    def __init__(self, source: str, destination: str) -> None:
        self.source = source
        self.destination = destination

    def __copy__(self) -> "CopySource":
        return self

    def __deepcopy__(self, memo: Any) -> "CopySource":
        return self

    def __repr__(self) -> str:
        return f"<copy {self.source} -> {self.destination}>"


# --- the step functions (their code is keyed like any step's) --------------------------------------


def _run_script(script: ScriptSource, args: Sequence[Any] = (), outputs: Outputs = None) -> Any:
    label = step_label(f"script {_shown(script.path)}")
    if not os.path.isfile(script.path):
        raise CommandFailed(f"{label}: the script is gone (looked for {script.path})")
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")  # its output then reaches the step's as it is printed
    with Arguments().session() as texts:
        argv = [sys.executable, script.path, *(texts.text(arg, f"{label}: args[{i}]") for i, arg in enumerate(args))]
        names = _names(outputs)
        clear_outputs(names, label)
        stdout = run_program(argv, label, env=env)
    return _returned(outputs, read_outputs(names, label), stdout)


def _run_shell(command: Sequence[Any], outputs: Outputs = None) -> Any:
    label = step_label("command")
    with Arguments().session() as texts:
        argv = [texts.text(arg, f"{label}: command[{i}]") for i, arg in enumerate(command)]
        label = step_label(f"command {_shown_command(argv)}")
        names = _names(outputs)
        clear_outputs(names, label)
        stdout = run_program(argv, label)
    return _returned(outputs, read_outputs(names, label), stdout)


def _run_copy(source: Any, destination: Any, check: CopySource | None = None) -> Copied:
    target = _location(destination, step_label("copy: destination"))
    label = step_label(f"copy to {target}")
    if isinstance(source, OutputFile):
        entries = copying.write_bytes(source.data, target)
    else:
        origin = _location(source, f"{label}: source")
        # the run after a first copy finds the destination up to date (and records the hit): no second transfer
        wanted = copying.manifest(origin, what="source") if check is not None else None
        if wanted is not None and copying.holds(target, wanted):
            entries = wanted
        else:
            entries = copying.copy_tree(origin, target, label)
    return Copied(target, *copying.digest_of_manifest(entries))


# --- helpers -------------------------------------------------------------------------------------


@functools.cache
def _script_step(stem: str) -> Step:
    """One step per script name, so that nodes are named ``train``, ``train-2``, ... by the usual rule."""
    return _named_step(_run_script, stem)


@functools.cache
def _named_step(fn: Callable[..., Any], name: str) -> Step:
    """``fn`` as a step whose function is named ``name`` (the same code: the same key)."""
    renamed = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    renamed.__kwdefaults__, renamed.__doc__ = fn.__kwdefaults__, fn.__doc__
    renamed.__qualname__, renamed.__annotations__ = fn.__qualname__, dict(fn.__annotations__)
    return step(renamed)


def _options(the_step: Step, options: dict[str, Any], what: str) -> Step:
    if not options:
        return the_step
    try:
        return the_step.options(**options)
    except FlowDefinitionError as exc:
        raise FlowDefinitionError(f"fk.steps.{what}: {exc.message}", hint=exc.hint) from None


def _script_source(path: Any) -> ScriptSource:
    if _is_handle(path) or not isinstance(path, (str, os.PathLike)):
        raise FlowDefinitionError(
            f"fk.steps.script: the script path must be known when the flow is built, got {path!r}",
            hint='name the file: fk.steps.script("train.py") or Path(__file__).parent / "train.py"')
    full = os.path.abspath(os.fspath(path))
    if not os.path.isfile(full):
        raise FlowDefinitionError(f"fk.steps.script: there is no script {os.fspath(path)!r} (looked for {full})",
                                  hint=f"a relative path is taken from the working directory ({os.getcwd()}); "
                                       "name a script beside the flow file with Path(__file__).parent / 'name.py'")
    return ScriptSource(full)


def _stem(path: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    return stem or "script"


def _is_handle(value: Any) -> bool:
    """A step output or flow parameter: ``graph.builder``'s ``Output`` and ``Param``, known here by
    name because authoring sits below the graph and may not import it."""
    cls = type(value)
    return cls.__module__ == "flowkit.graph.builder" and cls.__qualname__ in ("Output", "Param")


def _sequence(value: Any, what: str, field: str) -> list[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise FlowDefinitionError(f"fk.steps.{what}: {field} must be a list, got {value!r}",
                                  hint=f'e.g. {field}=["--lr", lr, "--out", "model.pkl"]')
    return list(value)


def _checked_args(args: Any, what: str, field: str = "args") -> list[Any]:
    """The items as given (handles stay handles for the graph), each one with a text form."""
    items = _sequence(args, what, field)
    for index, item in enumerate(items):
        why = None if _is_handle(item) else text_error(item)
        if why is not None:
            raise FlowDefinitionError(f"fk.steps.{what}: {field}[{index}] is {item!r}: {why}",
                                      hint="pass text, numbers, paths, fk.File, step outputs or flow parameters")
    return items


def _checked_outputs(outputs: Any, what: str) -> Outputs:
    if outputs is None:
        return None
    names = [outputs] if isinstance(outputs, str) else outputs
    if not isinstance(names, (list, tuple)) or not names:
        raise FlowDefinitionError(
            f"fk.steps.{what}: outputs must be a file name or a non-empty list of them, got {outputs!r}",
            hint='e.g. outputs="model.pkl" or outputs=["model.pkl", "report.json"]')
    for name in names:
        if not isinstance(name, str) or not name or "\0" in name:
            raise FlowDefinitionError(f"fk.steps.{what}: output {name!r} is not a file name",
                                      hint="name each file the program writes, relative to the working directory")
    if len(set(names)) != len(names):
        raise FlowDefinitionError(f"fk.steps.{what}: outputs name a file twice: {list(names)!r}")
    return outputs if isinstance(outputs, str) else tuple(names)


def _names(outputs: Outputs) -> list[str]:
    return [] if outputs is None else [outputs] if isinstance(outputs, str) else list(outputs)


def _returned(outputs: Outputs, files: dict[str, OutputFile], stdout: str) -> Any:
    if outputs is None:
        return stdout
    return files[outputs] if isinstance(outputs, str) else files


def _location(value: Any, where: str) -> str:
    """A copy's end as a URI: text, a path, ``fk.File`` or what another copy made."""
    if isinstance(value, Copied):
        return value.uri
    if isinstance(value, (str, os.PathLike)) and not isinstance(value, bool):
        return os.fspath(value)
    raise TypeError(f"{where}: a {type(value).__name__} is not a path or URI")


def _outputs_not_inputs(args: list[Any], outputs: Outputs, what: str) -> None:
    """A declared output is removed before the program runs: it cannot also be one of its inputs."""
    inputs = {os.path.abspath(os.fspath(arg)) for arg in args if isinstance(arg, os.PathLike) and not _is_handle(arg)}
    for name in _names(outputs):
        if os.path.abspath(name) in inputs:
            raise FlowDefinitionError(f"fk.steps.{what}: {name!r} is both an input and a declared output",
                                      hint="write the result to a new file: outputs are removed before the step runs, "
                                           "and a re-run must not read what the last run wrote")


def _shown(path: str) -> str:
    """A path as the user probably wrote it: relative to the working directory when inside it."""
    relative = os.path.relpath(path)
    return path if relative.startswith(os.pardir) else relative


def _shown_command(argv: list[str]) -> str:
    shown = argv[2] if argv[:2] == ["bash", "-c"] and len(argv) > 2 else " ".join(argv)
    return repr(shown if len(shown) <= 60 else shown[:57] + "...")
