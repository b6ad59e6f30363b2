"""Every mistake a user can make is a FlowkitError: what went wrong, where, and how to fix it.

The CLI prints ``str(error)`` (message plus hint) without a traceback and exits with
``error.exit_code``: 2 for usage errors, 1 for a step output that cannot be stored, 3 for a store
problem. A step that raises is not an error of flowkit's: it fails the run, and the CLI exits 1.
"""

from __future__ import annotations


class FlowkitError(Exception):
    """Base class of every error a user can cause."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class FlowDefinitionError(FlowkitError):
    """The flow or step definition is wrong: bad options, clashes, cycles, control flow."""


class CycleError(FlowDefinitionError):
    """An ``after`` ordering would make the graph cyclic; ``cycle`` lists the node path."""

    def __init__(self, message: str, cycle: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.cycle = cycle


class ParameterError(FlowkitError):
    """A flow parameter is missing, unknown or of the wrong type."""


class LoadError(FlowkitError):
    """A FLOW reference (``file.py:attr`` or ``pkg.mod:attr``) cannot be resolved."""


class StoreError(FlowkitError):
    """The store cannot be read or written, or a record is missing."""

    exit_code = 3


class SerializationError(FlowkitError):
    """A step's output cannot be serialized into the store."""

    exit_code = 1


class CompileError(FlowkitError):
    """A flow cannot be expressed in the requested target."""


class RunCancelled(FlowkitError):
    """The run was interrupted (Ctrl-C) and marked cancelled."""

    exit_code = 130
