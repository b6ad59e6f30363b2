"""Backends by name, as lazy import strings: nothing heavy is imported until it is used.

It sits above the backends (it names them) and below the callers that pick one by name: the
``Flow`` facade and the CLI. Execution never looks a backend up: it is handed a runner.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flowkit.errors import UsageError

if TYPE_CHECKING:
    from flowkit.backends.base import Compiler, Runner

RUNNERS = {
    "local": "flowkit.backends.runners.local:LocalRunner",
    "process": "flowkit.backends.runners.process:ProcessRunner",
    "docker": "flowkit.backends.runners.docker:DockerRunner",
}
COMPILERS = {
    "airflow": "flowkit.backends.compilers.airflow:AirflowCompiler",
    "argo": "flowkit.backends.compilers.argo:ArgoCompiler",
    "shell": "flowkit.backends.compilers.shell:ShellCompiler",
}


def _load(kind: str, table: dict[str, str], name: str) -> Any:
    if name not in table:
        raise UsageError(f"unknown {kind} {name!r}", hint=f"choose one of: {', '.join(table)}")
    module, _, attr = table[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def runner(name: str, workers: int | None = None) -> "Runner":
    """A Runner instance for ``--backend NAME``."""
    return _load("backend", RUNNERS, name)(workers=workers)


def compiler(name: str) -> "Compiler":
    """A Compiler instance for ``--target NAME``."""
    return _load("target", COMPILERS, name)()
