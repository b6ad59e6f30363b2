"""``fk.File``: a step input keyed by the file's content, so a moved identical file stays cached (SPEC §4)."""

from __future__ import annotations

import os
from typing import IO, Any

import attrs


@attrs.frozen
class File:
    """A path whose bytes, not its name, go into the cache key; usable wherever a path is."""

    path: str = attrs.field(converter=os.fspath)

    def __fspath__(self) -> str:
        return self.path

    def open(self, mode: str = "rb") -> IO[Any]:
        """Open the file; binary by default because the key is over its bytes."""
        return open(self.path, mode)

    def read_bytes(self) -> bytes:
        """The whole content, the same bytes the fingerprint was computed from."""
        with self.open() as handle:
            return handle.read()
