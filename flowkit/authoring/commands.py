"""Running a program as a step, for ``fk.steps.script`` and ``fk.steps.shell``.

The program's stdout and stderr are copied, as they come, to this step's ``sys.stdout`` and
``sys.stderr`` (Python objects, not file descriptors 1 and 2, so whatever captures a step's
output sees the program's too). A non-zero exit fails the step with the end of its stderr. The
files the program writes come back by content (``OutputFile``): they then live in the store and
reach downstream steps on any machine, and a cache hit does not depend on the working directory.
``Copied`` is what a copy step returns, for the same reason: its digest is the content's.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import attrs

from flowkit.authoring.files import File
from flowkit.authoring.metrics import current_log

if TYPE_CHECKING:
    import subprocess

# subprocess, selectors, shutil and tempfile are imported where a program runs: `import flowkit` stays fast

TAIL_LINES = 20  # lines of stderr a failure shows
_TAIL_BYTES = 16 * 1024
_CHUNK = 64 * 1024
# Started first on Linux, then replaced by the program (same process): the program is killed when
# the step's process dies, as a step whose timeout expired is, instead of running on unseen.
_BOOT = ("import ctypes, os, signal, sys\n"
         "try:\n    ctypes.CDLL(None).prctl(1, signal.SIGKILL)\nexcept (OSError, AttributeError):\n    pass\n"
         "if os.getppid() != int(sys.argv[1]):\n    os._exit(1)\n"
         "os.execvp(sys.argv[2], sys.argv[2:])\n")


class CommandFailed(RuntimeError):
    """A prebuilt step's program exited non-zero, or did not write a file it declared.

    Not a ``FlowkitError``: like an exception raised in a user's step, it fails this step, and
    the run goes on with the branches that do not depend on it.
    """


@attrs.frozen
class OutputFile:
    """A file a step's program wrote, carried by its bytes; ``name`` is the path it was declared as.

    Its fingerprint is its name and bytes, so a downstream step re-runs exactly when the content
    changed. Passed in ``args`` of a script or shell step it is written to a temporary file whose
    path is what the program gets; elsewhere use ``read_bytes()``, ``read_text()`` or ``save()``.
    """

    name: str
    data: bytes = attrs.field(repr=False)

    def read_bytes(self) -> bytes:
        return self.data

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.data.decode(encoding)

    def save(self, path: str | os.PathLike[str]) -> File:
        """Write the bytes to ``path`` (atomically: a reader never sees half a file); its ``fk.File``."""
        import tempfile

        target = os.path.abspath(os.fspath(path))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", dir=os.path.dirname(target))
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(self.data)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        return File(target)


@attrs.frozen
class Copied:
    """What ``fk.steps.copy`` made: the destination and the BLAKE3 of the bytes it holds, so a step
    downstream of a copy re-runs exactly when the copied content changed. In ``args`` of a script
    or shell step it is its ``uri``."""

    uri: str
    digest: str
    size: int

    def __str__(self) -> str:
        return self.uri


def step_label(what: str) -> str:
    """``step 'train': script train.py`` in a run, ``script train.py`` in a plain call."""
    log = current_log()
    return f"step {log.node!r}: {what}" if log is not None else what


def text_error(value: Any) -> str | None:
    """Why a value has no text form for a program's argument list; None when it has one."""
    if isinstance(value, bool):
        return "a bool has no one text form (True? true? 1?)"
    if isinstance(value, (str, int, float, OutputFile, Copied, os.PathLike)):
        if isinstance(value, str) and "\0" in value:
            return "it holds a NUL character, which no argument can carry"
        return None
    return f"a {type(value).__name__} has no text form"


class Arguments:
    """The program's arguments as text; ``OutputFile`` values written to a scratch folder that is
    removed when the block ends."""

    def __init__(self) -> None:
        self._scratch: str | None = None

    @contextlib.contextmanager
    def session(self) -> Iterator["Arguments"]:
        try:
            yield self
        finally:
            if self._scratch is not None:
                import shutil

                shutil.rmtree(self._scratch, ignore_errors=True)

    def text(self, value: Any, where: str) -> str:
        why = text_error(value)
        if why is not None:
            raise TypeError(f"{where}: {why}; pass text, a number, a path or fk.File")
        if isinstance(value, OutputFile):
            return self._materialize(value)
        if isinstance(value, Copied):
            return value.uri
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        return str(value)

    def _materialize(self, value: OutputFile) -> str:
        import tempfile

        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix="flowkit-inputs-")
        folder = tempfile.mkdtemp(dir=self._scratch)  # one each: two inputs may share a base name
        path = os.path.join(folder, os.path.basename(value.name) or "input")
        with open(path, "wb") as out:
            out.write(value.data)
        return path


def clear_outputs(names: Sequence[str], label: str) -> None:
    """Remove the declared outputs before the program runs, so that a file left by an earlier run
    is never taken for one this run wrote (as Snakemake does)."""
    for name in names:
        path = os.path.abspath(name)
        if os.path.isdir(path) and not os.path.islink(path):
            raise CommandFailed(f"{label}: declared output {name!r} is a folder; outputs are files")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def read_outputs(names: Sequence[str], label: str) -> dict[str, OutputFile]:
    found = {}
    for name in names:
        path = os.path.abspath(name)
        try:
            with open(path, "rb") as handle:
                found[name] = OutputFile(name, handle.read())
        except (FileNotFoundError, IsADirectoryError):
            raise CommandFailed(f"{label}: exited 0 but did not write its declared output {name!r} "
                                f"(looked for {path})") from None
    return found


def run_program(argv: list[str], label: str, *, env: dict[str, str] | None = None) -> str:
    """Run ``argv`` in the current folder with no stdin, echo its output, and return its stdout
    as text; a non-zero exit raises ``CommandFailed`` with the end of its stderr."""
    import subprocess

    _check_program(argv[0], label)
    if sys.platform.startswith("linux"):
        argv = [sys.executable, "-I", "-S", "-c", _BOOT, str(os.getpid()), *argv]
    # its own process group: Ctrl-C reaches the step, which then stops the program and its children
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env, process_group=0)
    try:
        stdout, stderr_tail = _pump(process)
        code = process.wait()
    finally:
        if process.poll() is None:  # interrupted (Ctrl-C, SIGTERM): the program must not outlive the step
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
    if code != 0:
        raise CommandFailed(f"{label} {_exit_text(code)}{_tail_text(stderr_tail)}")
    return stdout


def _check_program(program: str, label: str) -> None:
    import shutil

    if os.sep in program:
        if not os.access(program, os.X_OK) or os.path.isdir(program):
            raise CommandFailed(f"{label}: {program!r} is not an executable file")
    elif shutil.which(program) is None:
        raise CommandFailed(f"{label}: command {program!r} is not found on PATH")


def _pump(process: subprocess.Popen[bytes]) -> tuple[str, bytes]:
    """Copy the program's output to this step's streams while it runs, from this thread (a capture
    of ``sys.stdout`` may be per thread); all of stdout is kept, and the tail of stderr."""
    import selectors

    assert process.stdout is not None and process.stderr is not None
    streams: dict[int, tuple[str, Any]] = {
        process.stdout.fileno(): ("out", codecs.getincrementaldecoder("utf-8")("replace")),
        process.stderr.fileno(): ("err", codecs.getincrementaldecoder("utf-8")("replace")),
    }
    stdout: list[str] = []
    tail = bytearray()
    with selectors.DefaultSelector() as selector:
        for fd in streams:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            for key, _ in selector.select():
                data = os.read(key.fd, _CHUNK)
                kind, decoder = streams[key.fd]
                if not data:
                    selector.unregister(key.fd)
                text = decoder.decode(data, final=not data)
                if kind == "out":
                    stdout.append(text)
                else:
                    tail += data
                    del tail[:-_TAIL_BYTES]
                _echo(sys.stdout if kind == "out" else sys.stderr, text)
    return "".join(stdout), bytes(tail)


def _echo(stream: TextIO | None, text: str) -> None:
    if stream is not None and text:
        stream.write(text)
        stream.flush()


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _tail_text(tail: bytes) -> str:
    lines = tail.decode("utf-8", "replace").rstrip().splitlines()[-TAIL_LINES:]
    if not lines:
        return " (it wrote nothing to stderr)"
    return "; the end of its stderr:\n" + "\n".join(f"  {line}" for line in lines)
