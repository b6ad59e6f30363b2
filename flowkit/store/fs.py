"""The primitive file operations a store is built on, and their local-disk implementation.

Every path is relative to the store root and "/"-separated; ``store.layout`` makes them. A
second implementation (a remote filesystem through fsspec) provides the same few operations.
Writes are atomic: a temporary name in the same folder, then a rename, so a killed writer never
leaves a partial file under a real name.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Protocol

from flowkit.errors import StoreError

TEMPORARY_MARK = ".tmp-"  # in the names of files being written; never a record or an object


def atomic_write(path: str, data: bytes | memoryview) -> None:
    """Write to a temporary name in the same folder, then rename over the real one."""
    folder, name = os.path.split(path)
    tmp = f"{folder}/.{name}{TEMPORARY_MARK}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}",
                         hint="check free space and permissions of that folder") from None


class FileSystem(Protocol):
    """What the store needs of the place it lives in."""

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""

    def write(self, path: str, data: bytes | memoryview) -> None:
        """Create or replace the file atomically (StoreError when it cannot)."""

    def size(self, path: str) -> int | None:
        """The file's size, or None when it does not exist."""

    def files(self, folder: str) -> list[str]:
        """Every file under ``folder``, recursively, sorted; empty when the folder is missing."""

    def folders(self, folder: str) -> list[str]:
        """The names of the folders directly in ``folder``, sorted."""

    def delete(self, path: str) -> None:
        """Remove a file; a missing one is no error."""

    def delete_tree(self, folder: str) -> None:
        """Remove a folder and everything in it; a missing one is no error."""

    def local(self, path: str) -> Path:
        """A path on this machine for what must be a local file (the SQLite index, unpacked bundles)."""


class LocalFS:
    """A store folder on a local or mounted disk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root = str(root)

    def read(self, path: str) -> bytes | None:
        try:
            with open(f"{self._root}/{path}", "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def write(self, path: str, data: bytes | memoryview) -> None:
        atomic_write(f"{self._root}/{path}", data)

    def size(self, path: str) -> int | None:
        try:
            return os.stat(f"{self._root}/{path}").st_size
        except OSError:
            return None

    def files(self, folder: str) -> list[str]:
        base = self.root / folder
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())

    def folders(self, folder: str) -> list[str]:
        try:
            return sorted(entry.name for entry in os.scandir(f"{self._root}/{folder}") if entry.is_dir())
        except FileNotFoundError:
            return []

    def delete(self, path: str) -> None:
        try:
            os.unlink(f"{self._root}/{path}")
        except FileNotFoundError:
            pass

    def delete_tree(self, folder: str) -> None:
        shutil.rmtree(f"{self._root}/{folder}", ignore_errors=True)

    def local(self, path: str) -> Path:
        return self.root / path
