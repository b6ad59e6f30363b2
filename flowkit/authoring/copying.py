"""Copying files and folders between places fsspec reaches, for ``fk.steps.copy``.

A place's content is a manifest: ``(relative path, BLAKE3, size)`` per file (``""`` for a file
itself), read in full (a file's metadata can stay the same while its bytes change). The same
manifest keys the step and tells whether a destination is already up to date.
"""

from __future__ import annotations

import os
from typing import Any

import blake3

from flowkit.errors import FlowDefinitionError

Manifest = tuple[tuple[str, str, int], ...]
_CHUNK = 16 << 20


def manifest(uri: str, *, what: str) -> Manifest:
    """The content of the file or folder at ``uri``; FileNotFoundError when there is none."""
    fs, path = _filesystem(uri)
    if fs.isfile(path):
        return (("", *_digest_of(fs, path)),)
    if not fs.isdir(path):
        raise FileNotFoundError(f"the {what} {uri!r} does not exist")
    return tuple(sorted((_relative(full, path), *_digest_of(fs, full)) for full in fs.find(path)))


def holds(uri: str, wanted: Manifest) -> bool:
    """Whether every file of ``wanted`` is at ``uri`` with the same bytes (other files may be there too)."""
    fs, path = _filesystem(uri)
    for relative, digest, size in wanted:
        full = _join(path, relative)
        if not fs.isfile(full) or fs.size(full) != size or _digest_of(fs, full) != (digest, size):
            return False
    return True


def digest_of_manifest(entries: Manifest) -> tuple[str, int]:
    """One digest and size for what a copy holds: a file's own BLAKE3, or one over a folder's list."""
    if len(entries) == 1 and entries[0][0] == "":
        return entries[0][1], entries[0][2]
    return blake3.blake3(repr(entries).encode()).hexdigest(), sum(size for _, _, size in entries)


def copy_tree(source: str, destination: str, label: str) -> Manifest:
    """Copy a file, or every file under a folder, hashing the bytes as they pass; their manifest."""
    src_fs, src_path = _filesystem(source)
    dst_fs, dst_path = _filesystem(destination)
    if src_fs.isfile(src_path):
        return (("", *_copy_file(src_fs, src_path, dst_fs, dst_path)),)
    if not src_fs.isdir(src_path):
        raise FileNotFoundError(f"{label}: the source {source!r} does not exist")
    entries = []
    for full in sorted(src_fs.find(src_path)):
        relative = _relative(full, src_path)
        entries.append((relative, *_copy_file(src_fs, full, dst_fs, _join(dst_path, relative))))
    return tuple(entries)


def write_bytes(data: bytes, destination: str) -> Manifest:
    """Put bytes a step made at ``destination``."""
    dst_fs, dst_path = _filesystem(destination)
    _make_parent(dst_fs, dst_path)
    dst_fs.pipe_file(dst_path, data)
    return (("", blake3.blake3(data).hexdigest(), len(data)),)


def _filesystem(uri: str) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError:  # a declared dependency, so only a broken install gets here
        raise FlowDefinitionError("fk.steps.copy needs fsspec", hint="pip install 'fsspec>=2024.2'") from None
    fs, path = fsspec.core.url_to_fs(uri)
    fs.invalidate_cache(path)  # a listing cached by s3fs and the like may be older than the data
    return fs, path


def _digest_of(fs: Any, path: str) -> tuple[str, int]:
    hasher, size = blake3.blake3(), 0
    with fs.open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size


def _relative(full: str, root: str) -> str:
    return full[len(root.rstrip("/")):].lstrip("/")


def _join(root: str, relative: str) -> str:
    return f"{root.rstrip('/')}/{relative}" if relative else root


def _make_parent(fs: Any, path: str) -> str:
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    return parent


def _copy_file(src_fs: Any, src_path: str, dst_fs: Any, dst_path: str) -> tuple[str, int]:
    """Stream one file across; on a local destination through a temporary file and a rename, so
    that a killed copy never leaves half a file under the real name."""
    parent = _make_parent(dst_fs, dst_path)
    protocols = dst_fs.protocol if isinstance(dst_fs.protocol, tuple) else (dst_fs.protocol,)
    local = "file" in protocols
    temporary = f"{parent}/.{dst_path.rsplit('/', 1)[-1]}.flowkit-{os.getpid()}" if local else dst_path
    hasher, size = blake3.blake3(), 0
    try:
        with src_fs.open(src_path, "rb") as reader, dst_fs.open(temporary, "wb") as writer:
            while chunk := reader.read(_CHUNK):
                hasher.update(chunk)
                writer.write(chunk)
                size += len(chunk)
        if local:
            os.replace(temporary, dst_path)
    except BaseException:
        if local and os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return hasher.hexdigest(), size
