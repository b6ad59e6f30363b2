"""Backends by name, as lazy import strings: nothing heavy is imported until it is used."""

from __future__ import annotations

import importlib
from typing import Any

from .errors import FlowkitError

RUNNERS = {
    "local": "flowkit.backends.local:LocalRunner",
    "process": "flowkit.backends.process:ProcessRunner",
    "docker": "flowkit.backends.docker:DockerRunner",
}
COMPILERS = {
    "airflow": "flowkit.backends.airflow:AirflowCompiler",
    "argo": "flowkit.backends.argo:ArgoCompiler",
    "shell": "flowkit.backends.shell:ShellCompiler",
}


def _load(kind: str, table: dict[str, str], name: str) -> Any:
    if name not in table:
        raise FlowkitError(f"unknown {kind} {name!r}", hint=f"choose one of: {', '.join(table)}")
    module, _, attr = table[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def runner(name: str, workers: int | None = None) -> Any:
    """A Runner instance for ``--backend NAME``."""
    return _load("backend", RUNNERS, name)(workers=workers)


def compiler(name: str) -> Any:
    """A Compiler instance for ``--target NAME``."""
    return _load("target", COMPILERS, name)()
