"""Every error flowkit raises, in one home: user errors (``FlowkitError``) and internal signals.

A ``FlowkitError`` is a mistake a user can make: what went wrong, where, and how to fix it. The
CLI prints ``str(error)`` (message plus hint) without a traceback and exits with
``error.exit_code``: 2 for usage errors, 1 for a step output that cannot be stored, 3 for a store
problem. A step that raises is not an error of flowkit's: it fails the run, and the CLI exits 1.

A ``Signal`` is raised and caught inside flowkit (an unstable value, a corrupt object, a lost
input, a step that timed out or raised in its child process); it never reaches a user as such.
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


class UsageError(FlowkitError):
    """An argument names nothing valid: an unknown backend, target, run or step, a bad run id."""


class LoadError(FlowkitError):
    """A FLOW reference (``file.py:attr`` or ``pkg.mod:attr``) cannot be resolved."""


class CodeMismatchError(FlowkitError):
    """A worker's step code differs from the code that was compiled (``run-step --expect-code``)."""


class BackendError(FlowkitError):
    """A backend cannot do its job: no Docker daemon, no image for a step, a flow it cannot reach."""


class StoreError(FlowkitError):
    """The store cannot be read or written, or a record is missing."""

    exit_code = 3


class MissingUpstream(StoreError):
    """An upstream node of this run has no usable output in the store (``run-step`` exits 3)."""


class SerializationError(FlowkitError):
    """A step's output cannot be serialized into the store."""

    exit_code = 1


class CompileError(FlowkitError):
    """A flow cannot be expressed in the requested target."""


class RunCancelled(FlowkitError):
    """The run was interrupted (Ctrl-C) and marked cancelled."""

    exit_code = 130


# --- internal signals ----------------------------------------------------------------------------


class Signal(Exception):
    """Base class of flowkit's internal signals: each is caught inside flowkit and turned into an
    outcome (a step run uncached, an output made again, a failed step)."""


class Unstable(Signal):
    """A value or function that cannot be fingerprinted stably: the step runs uncached, and
    ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CorruptObject(Signal):
    """An object whose bytes do not match its digest, or that is gone: treated as missing, never loaded."""


class MissingInput(Signal):
    """An upstream output is missing or corrupt: the producing node must be made again."""

    def __init__(self, node: str, reason: str) -> None:
        super().__init__(node, reason)  # both in args: it pickles, to cross from a worker process
        self.node = node
        self.reason = reason

    def __str__(self) -> str:
        return f"output of {self.node!r}: {self.reason}"


class StepFailure(Signal):
    """A step call failed in a child process; ``error`` is the one-line message to show as it is."""

    def __init__(self, error: str, traceback_text: str = "") -> None:
        super().__init__(error)
        self.error = error
        self.traceback_text = traceback_text


class StepTimedOut(StepFailure):
    """The step ran past its timeout and its process was killed."""


class StepRaised(StepFailure):
    """The step raised in the child; carries the child's formatted traceback."""
