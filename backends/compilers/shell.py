"""The ``shell`` target: one bash script per flow that runs every node through ``run-step``.

Nodes run generation by generation (the independent nodes of one generation in parallel, at
most ``--jobs`` at a time); each is ``python -m flowkit run-step`` against one store, so a
re-run of a failed script, with the same or a new ``--run-id``, reuses every finished step.
A ``.map`` node lists its items (``run-step --items``) when its generation starts, runs them
beside the generation's other steps (``--item N``, at most ``--jobs`` steps and ``max_parallel``
items at once; a failed item stops nothing), then gathers them, which applies
``min_success_ratio``.
Every value from the flow reaches the script through ``shquote`` (code) or ``tojson``
(comments); values known only at run time are double-quoted variables. Before any step the script
finds a Python that can run them (``python_candidates``) or exits 127 saying how to get one.
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import TYPE_CHECKING

import attrs

from flowkit.errors import CompileError
from flowkit.authoring.params import cli_text

from flowkit.backends.compilers._checks import no_container_hints, refuse_unsupported
from flowkit.backends._command import step_argv
from flowkit.backends.compilers._render import render
from flowkit.backends.base import Artifact

if TYPE_CHECKING:
    from flowkit.graph.nodes import FlowSpec
    from flowkit.authoring.params import ParamSpec

    from flowkit.backends.base import CompileOptions

SUPPORTED = {"retries", "retry_delay", "timeout", "env"}
HINTS = no_container_hints('a shell script', "this machine's Python")
# Options of the script itself: a flow parameter with one of these names is set with -p only.
SCRIPT_OPTIONS = {"jobs", "run-id", "store", "python", "help"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASCII_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NOT_FILE_NAME = re.compile(r"[^A-Za-z0-9_-]+")
# What the script imports to check that a Python can run the steps: what run-step runs, so that a
# Python that finds flowkit's folder but not its dependencies (blake3, dill, ...) is not taken.
CHECK_IMPORT = "flowkit.execution.entrypoint"
FALLBACK_PYTHON = "python3"


@attrs.frozen
class ShellParam:
    """A flow parameter as the script sees it."""

    name: str
    var: str                  # the bash variable holding its text
    options: tuple[str, ...]  # --name (and --dashed-name); empty when a script option has the name
    default: str | None       # the text run-step's -p expects; None when required
    type: str


@attrs.frozen
class ShellStep:
    """One node: a bash function that runs its run-step command."""

    name: str
    function: str
    argv: tuple[str, ...]     # static words after "$PYTHON" (no --store, --run-id or -p)
    retries: int
    retry_delay: str
    timeout: str | None
    env: tuple[str, ...]      # NAME=value words for env(1)
    map: bool = False         # a .map node: its function takes --items, --item=N, or nothing (the gather)
    max_parallel: int | None = None  # at most this many of its items at once


class ShellCompiler:
    """Renders ``templates/shell/run.sh.j2``; refuses image and resources."""

    target = "shell"
    # Of the options only some targets read, the ones this one does (the CLI refuses the others).
    options_used: frozenset[str] = frozenset({"jobs", "python"})

    def compile(self, flow: "FlowSpec", options: "CompileOptions") -> list[Artifact]:
        refuse_unsupported(flow, self.target, SUPPORTED, HINTS, maps=True)
        check_env_names(flow)
        params = [shell_param(i, spec) for i, spec in enumerate(flow.params)]
        functions = {name: f"step_{i}" for i, name in enumerate(_flatten(flow.graph.generations()), 1)}
        steps = {name: shell_step(flow, options, name, function) for name, function in functions.items()}
        generations = [[steps[name] for name in level] for level in flow.graph.generations()]
        script = script_name(flow.name)
        pythons = python_candidates(options.python)
        content = render(
            "shell/run.sh.j2",
            source=options.source, flow_name=flow.name, schedule=flow.schedule, options=options,
            params=params, generations=generations, steps=list(steps.values()),
            help=help_lines(script, flow, options, params, pythons),
            uses_retries=any(step.retries for step in steps.values()),
            uses_maps=any(step.map for step in steps.values()),
            pythons=pythons, check_import=CHECK_IMPORT,
        )
        return [Artifact(script, content, executable=True)]


def _flatten(levels: list[list[str]]) -> list[str]:
    return [name for level in levels for name in level]


def python_candidates(python: str) -> list[str]:
    """The interpreters the script tries, in order, when neither --python nor $FLOWKIT_PYTHON names one.

    An absolute path (by default the interpreter that compiled the script) belongs to the machine
    that compiled it, so ``python3`` on PATH comes after it; a name is looked up on PATH wherever
    the script runs, and is the only one tried.
    """
    if posixpath.isabs(python):
        return [python, FALLBACK_PYTHON]
    return [python]


def script_name(flow_name: str) -> str:
    """A file name made of the flow name: ``digits`` -> ``digits.sh``; nothing can escape the folder."""
    return (_NOT_FILE_NAME.sub("_", flow_name).strip("_-") or "flow") + ".sh"


def check_env_names(flow: "FlowSpec") -> None:
    """env(1) can set only names without '=' that are not options: refuse the rest at compile time."""
    for name in flow.graph.order():
        for key, _value in flow.graph.nodes[name].step.opts.env:
            if not _ENV_NAME.fullmatch(key):
                raise CompileError(
                    f"flow {flow.name!r}, step {name!r}: option 'env' sets {key!r}, which is not a variable name",
                    hint="use letters, digits and _ (not starting with a digit) in environment variable names",
                )


def shell_param(index: int, spec: "ParamSpec") -> ShellParam:
    # Python allows non-ASCII identifiers, bash variables do not; p_<digit> can name no parameter.
    var = f"p_{spec.name}" if _ASCII_NAME.fullmatch(spec.name) else f"p_{index}"
    spellings = dict.fromkeys([spec.name, spec.name.replace("_", "-")])
    options = () if SCRIPT_OPTIONS & set(spellings) else tuple(f"--{s}" for s in spellings)
    default = None if spec.required else cli_text(spec.type, spec.default)
    return ShellParam(spec.name, var, options, default, spec.type)


def seconds(value: float) -> str:
    """``600.0`` -> ``600``, ``0.5`` -> ``0.5``: what sleep(1) and timeout(1) read."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def shell_step(flow: "FlowSpec", options: "CompileOptions", name: str, function: str) -> ShellStep:
    node = flow.graph.nodes[name]
    opts = node.step.opts
    argv = step_argv(options, name)
    store_at = argv.index("--store")
    del argv[store_at:store_at + 2]  # the script passes its own --store "$STORE"
    return ShellStep(
        name=name, function=function, argv=tuple(argv), retries=opts.retries,
        retry_delay=seconds(opts.retry_delay), timeout=None if opts.timeout is None else seconds(opts.timeout),
        env=tuple(f"{key}={value}" for key, value in opts.env),
        map=node.map is not None, max_parallel=node.map.max_parallel if node.map else None,
    )


def shown(param: ShellParam) -> str:
    """A default as one line of help: JSON already is; str text is JSON-quoted."""
    return json.dumps(param.default) if param.type == "str" else str(param.default)


def help_lines(script: str, flow: "FlowSpec", options: "CompileOptions", params: list[ShellParam],
               pythons: list[str]) -> list[str]:
    """The text of ``--help``, one line each (values JSON-quoted, so each stays on one line)."""
    q = json.dumps
    rows = [(" ".join(p.options) + " VALUE" if p.options else f"-p {p.name}=VALUE",
             f"{p.type}, " + ("required" if p.default is None else f"default {shown(p)}")) for p in params]
    settings = [
        ("--jobs N", f"steps run at the same time (default: {options.jobs})"),
        ("--run-id ID", "the run's id (default: generated and printed); re-use one to resume that run"),
        ("--store URI", f"the store the steps share (default: {q(options.store)})"),
        ("--python PATH", f"a Python with flowkit installed (default: $FLOWKIT_PYTHON, else "
                          f"{', then '.join(q(p) for p in pythons)})"),
        ("-h, --help", "show this help"),
    ]
    width = max(len(left) for left, _ in rows + settings) + 2
    lines = [
        f"Usage: {script} [OPTIONS]",
        "",
        f"Runs flow {q(flow.name)} step by step with `python -m flowkit run-step`, independent steps",
        "in parallel. Steps that already finished in the store are reused, so a failed run resumes.",
        f"Generated by flowkit from FLOW {q(options.source)}.",
        "",
    ]
    if rows:
        lines += ["Flow parameters (also -p NAME=VALUE; str values are text, others JSON):"]
        lines += [f"  {left.ljust(width)}{right}" for left, right in rows] + [""]
    lines += ["Options (also --option=VALUE):"]
    lines += [f"  {left.ljust(width)}{right}" for left, right in settings]
    return lines
