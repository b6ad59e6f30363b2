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


def is_temporary(path: str) -> bool:
    """A file a writer is still writing (or a killed writer left): ``.<name>.tmp-<pid>-<hex>``."""
    name = path.rsplit("/", 1)[-1]
    return name.startswith(".") and TEMPORARY_MARK in name


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

    def read(self, path: str, limit: int | None = None) -> bytes | None:
        """The file's bytes (its first ``limit`` bytes), or None when it does not exist."""

    def write(self, path: str, data: bytes | memoryview) -> None:
        """Create or replace the file atomically (StoreError when it cannot)."""

    def size(self, path: str) -> int | None:
        """The file's size, or None when it does not exist."""

    def mtime(self, path: str) -> float | None:
        """When the file was last written (or touched), or None when it does not exist."""

    def touch(self, path: str) -> None:
        """Set the file's modification time to now, creating it empty if missing (heartbeats, reuse)."""

    def files(self, folder: str) -> list[str]:
        """Every file under ``folder``, recursively, sorted; empty when the folder is missing."""

    def folders(self, folder: str) -> list[str]:
        """The names of the folders directly in ``folder``, sorted."""

    def names(self, folder: str) -> list[str]:
        """The names of the files directly in ``folder`` ("" for the root), sorted."""

    def delete(self, path: str) -> None:
        """Remove a file; a missing one is no error."""

    def delete_tree(self, folder: str) -> None:
        """Remove a folder and everything in it; a missing one is no error."""

    def move(self, path: str, to: str) -> bool:
        """Rename a file or folder in one step (False when ``path`` is missing)."""

    def local(self, path: str) -> Path:
        """A path on this machine for what must be a local file (the SQLite index, unpacked bundles)."""


class LocalFS:
    """A store folder on a local or mounted disk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root = str(root)

    def read(self, path: str, limit: int | None = None) -> bytes | None:
        try:
            with open(f"{self._root}/{path}", "rb") as handle:
                return handle.read() if limit is None else handle.read(limit)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def write(self, path: str, data: bytes | memoryview) -> None:
        atomic_write(f"{self._root}/{path}", data)

    def size(self, path: str) -> int | None:
        try:
            return os.stat(f"{self._root}/{path}").st_size
        except OSError:
            return None

    def mtime(self, path: str) -> float | None:
        try:
            return os.stat(f"{self._root}/{path}").st_mtime
        except OSError:
            return None

    def touch(self, path: str) -> None:
        full = f"{self._root}/{path}"
        try:
            try:
                os.utime(full)
            except FileNotFoundError:
                os.close(os.open(full, os.O_WRONLY | os.O_CREAT, 0o644))
        except OSError as exc:
            raise StoreError(f"cannot write {full}: {exc.strerror or exc}",
                             hint="check free space and permissions of that folder") from None

    def files(self, folder: str) -> list[str]:
        # os.walk, not rglob: a folder another process removes meanwhile (gc) is skipped, not an error
        found = []
        for parent, _, names in os.walk(f"{self._root}/{folder}"):
            rel = parent[len(self._root) + 1:].replace(os.sep, "/")
            found += [f"{rel}/{name}" for name in names]
        return sorted(found)

    def folders(self, folder: str) -> list[str]:
        try:
            return sorted(entry.name for entry in os.scandir(f"{self._root}/{folder}") if entry.is_dir())
        except FileNotFoundError:
            return []

    def names(self, folder: str) -> list[str]:
        try:
            return sorted(entry.name for entry in os.scandir(f"{self._root}/{folder}") if entry.is_file())
        except (FileNotFoundError, NotADirectoryError):
            return []

    def delete(self, path: str) -> None:
        try:
            os.unlink(f"{self._root}/{path}")
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot remove {self._root}/{path}: {exc.strerror or exc}",
                             hint="check the permissions of the store") from None

    def delete_tree(self, folder: str) -> None:
        shutil.rmtree(f"{self._root}/{folder}", ignore_errors=True)

    def move(self, path: str, to: str) -> bool:
        target = f"{self._root}/{to}"
        try:
            try:
                os.rename(f"{self._root}/{path}", target)
            except FileNotFoundError:
                if not os.path.exists(f"{self._root}/{path}"):
                    return False
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.rename(f"{self._root}/{path}", target)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StoreError(f"cannot move {self._root}/{path}: {exc.strerror or exc}",
                             hint="check the permissions of the store") from None
        return True

    def local(self, path: str) -> Path:
        return self.root / path
