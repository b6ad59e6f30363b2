"""``fk.File`` and ``fk.Dir``: paths keyed by their content, so a moved identical file stays cached
(SPEC §4, §12).

As a step argument or a flow parameter (``def pipeline(data: fk.File = "in.csv")``) the bytes
go into the key, not the name; returned from a step, the store keeps the bytes and gives the
downstream step a path that holds them, on any machine that shares the store.
"""

from __future__ import annotations

import os
import pathlib
from typing import IO, Any

import attrs

from flowkit.authoring.step import current_recorder
from flowkit.errors import FlowDefinitionError


def _is_handle(value: Any) -> str | None:
    """"Param" or "Output" for ``graph.builder``'s placeholders, known here by name because
    authoring sits below the graph and may not import it; else None."""
    cls = type(value)
    if cls.__module__ == "flowkit.graph.builder" and cls.__qualname__ in ("Output", "Param"):
        return cls.__qualname__
    return None


def _path_text(kind: str) -> Any:
    """The converter of ``kind``'s path: any path-like value as text. A flow parameter or step
    output given while a flow body is traced has no path yet: that is said plainly, with the fix."""

    def convert(value: Any) -> str:
        try:
            return os.fspath(value)
        except TypeError:
            handle = _is_handle(value)
            recorder = current_recorder()
            if handle is None or recorder is None:
                raise TypeError(f"fk.{kind}() takes a path (str or os.PathLike), got {type(value).__name__} "
                                f"{value!r}") from None
            flow = getattr(recorder, "flow_name", "?")
            if handle == "Param":
                name = getattr(value, "name", "?")
                raise FlowDefinitionError(
                    f"flow {flow!r}: fk.{kind}({name}) in the flow body: parameter {name!r} has no value "
                    "while the flow is built",
                    hint=f"annotate the parameter instead (def {flow}({name}: fk.{kind} = ...)) and pass "
                         f"{name} to the step as it is: the step gets an fk.{kind}",
                ) from None
            node = getattr(value, "node", "?")
            raise FlowDefinitionError(
                f"flow {flow!r}: fk.{kind}() of the output of step {node!r} in the flow body: it has no "
                "value while the flow is built",
                hint=f"return fk.{kind}(path) from step {node!r} itself; the next step then gets it",
            ) from None

    return convert


@attrs.frozen
class File:
    """A path whose bytes, not its name, go into the cache key; usable wherever a path is."""

    path: str = attrs.field(converter=_path_text("File"))

    def __fspath__(self) -> str:
        return self.path

    def open(self, mode: str = "rb") -> IO[Any]:
        """Open the file; binary by default because the key is over its bytes."""
        return open(self.path, mode)

    def read_bytes(self) -> bytes:
        """The whole content, the same bytes the fingerprint was computed from."""
        with self.open() as handle:
            return handle.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


@attrs.frozen
class Dir:
    """A folder whose tree (every name under it and every file's bytes, hidden ones too), not its
    location, goes into the cache key; usable wherever a path is, and ``dir / "name"`` joins."""

    path: str = attrs.field(converter=_path_text("Dir"))

    def __fspath__(self) -> str:
        return self.path

    def __truediv__(self, name: str | os.PathLike[str]) -> pathlib.Path:
        return pathlib.Path(self.path) / name

    @property
    def name(self) -> str:
        return os.path.basename(os.path.normpath(self.path))

    def files(self) -> list[File]:
        """Every regular file under the folder (in sub-folders too), sorted by path."""
        return [File(path) for path in sorted(pathlib.Path(self.path).rglob("*")) if path.is_file()]
