"""Files a step returns (``fk.File`` / ``fk.Dir``, alone or inside the dict, list or tuple it
returns), kept in the store by content, and given back as paths that hold those bytes.

``freeze`` copies each file's bytes into an object of its own (named by their BLAKE3, verified
as they are copied) and puts a small manifest in the value in place of the path: ``StoredFile``
(one object) or ``StoredDir`` (relative path -> object, plus its folders). The value is stored
inside a ``Frozen`` envelope, whose fingerprint is that of the value as the step returned it, so
the output's digest follows the content: the same bytes give the same digest, and the steps
downstream stay cached (early cutoff). A sidecar ``manifests/<object>.json`` lists the objects
an output names, so ``gc`` keeps them with it and ``cache verify`` checks they are there,
without loading the output.

``thaw`` gives each part back as ``fk.File`` / ``fk.Dir`` of a path on this machine: the path it
was returned with while that still holds the same bytes, else a copy made from the objects under
``files/<digest>/<name>`` (written aside and renamed in, checked on every use), so a step on
another machine sharing the store reads the same bytes. A file object that is gone or damaged
raises ``CorruptObject``: the step that made it runs again, as for any lost output.

The copies go through ``FileSystem.local``: a store that lives elsewhere (fsspec) will restore
into a local folder instead.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import Any, Callable, Iterator

import attrs
import blake3

from flowkit.authoring.files import Dir, File
from flowkit.errors import CorruptObject, SerializationError, StoreError, Unstable
from flowkit.keys.values import (file_digest, register_fingerprint, register_stand_in, tree_digest,
                                 tree_entries)
from flowkit.store import layout
from flowkit.store.fs import TEMPORARY_MARK, FileSystem
from flowkit.store.objects import Objects, StoredOutput
from flowkit.store.records import PARSE_ERRORS, DataInput, RecordError, RunHeader, dumps_json, loads_json

_CHUNK = 16 << 20  # bytes copied (and hashed) at a time
_MAX_DEPTH = 100  # containers searched for files this deep; deeper parts are kept as they are
_CONTAINERS = (list, tuple, dict)


# -- what the stored value holds in place of a path ------------------------------------------------


@attrs.frozen
class StoredFile:
    """A returned ``fk.File``: where it was, and its bytes as object ``digest``."""

    path: str
    digest: str
    size: int


@attrs.frozen
class StoredDir:
    """A returned ``fk.Dir``: where it was, its tree digest, and its entries in ``tree_entries``
    order: ``(relative path, object digest, size)``, the digest None for a folder."""

    path: str
    digest: str
    entries: tuple[tuple[str, str | None, int], ...]


@attrs.frozen
class Frozen:
    """A step's output that held files, with manifests in their place."""

    value: Any


def _write_digest(value: StoredFile | StoredDir, feed: Any) -> None:
    feed.write_bytes(bytes.fromhex(value.digest))


# Written as fk.File / fk.Dir write themselves ("File" / "Dir", then the content digest), so a
# manifest fingerprints as the file it stands for, whatever its path.
register_fingerprint(StoredFile, _write_digest, tag="File")
register_fingerprint(StoredDir, _write_digest, tag="Dir")
register_stand_in(Frozen, lambda frozen: frozen.value)


# -- the sidecar: which objects an output names ---------------------------------------------------


@attrs.frozen
class Part:
    """One file or folder an output holds: ``at`` is where in the value (``['report']``, ``[0]``,
    "" for the whole value)."""

    at: str
    kind: str  # file | dir
    path: str
    digest: str
    size: int

    @property
    def name(self) -> str:
        return os.path.basename(os.path.normpath(self.path)) or self.kind

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Part":
        values = [data.get(name) for name in ("at", "kind", "path", "digest")]
        size = data.get("size")
        if not all(isinstance(v, str) for v in values) or not isinstance(size, int) or values[1] not in ("file", "dir"):
            raise RecordError("a part needs at, kind (file or dir), path and digest as text, size as an integer")
        return cls(*values, size)  # type: ignore[arg-type]


@attrs.frozen
class Manifest:
    """``manifests/<output object>.json``: the parts of one output and every object they name."""

    parts: tuple[Part, ...]
    objects: tuple[str, ...]  # sorted

    def to_json(self) -> dict[str, Any]:
        return {"parts": [part.to_json() for part in self.parts], "objects": list(self.objects)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Manifest":
        parts, objects = data.get("parts"), data.get("objects")
        if not isinstance(parts, list) or not isinstance(objects, list) or not all(isinstance(o, str) for o in objects):
            raise RecordError("a manifest needs a list of parts and a list of object ids")
        return cls(tuple(Part.from_json(p) for p in parts if isinstance(p, dict)), tuple(objects))

    @property
    def restored(self) -> set[str]:
        """The digests its parts are restored under (``files/<digest>/``)."""
        return {part.digest for part in self.parts}


# -- the store's side ----------------------------------------------------------------------------


class Files:
    """Freezing outputs into one store's objects and thawing them back."""

    def __init__(self, fs: FileSystem, objects: Objects) -> None:
        self.fs = fs
        self.objects = objects

    # outputs: the one place a step's output is stored, and loaded

    def put_output(self, value: Any, *, where: str) -> StoredOutput:
        """Store a step's output, its files first; ``where`` names the step for errors."""
        frozen, manifest = self.freeze(value, where)
        output = self.objects.put(frozen, where=where)
        if manifest is not None:
            path = layout.manifest_path(output.object)
            data = dumps_json(manifest.to_json())
            if self.fs.size(path) != len(data):
                self.fs.write(path, data)
            else:
                self.fs.touch(path)  # fresh for gc: a record naming it is about to be written
        return output

    def load_output(self, output: StoredOutput | str) -> Any:
        """An output's value, its files restored to paths on this machine; CorruptObject when its
        object or one of its files is gone or damaged."""
        return self.thaw(self.objects.load(output))

    # freezing

    def freeze(self, value: Any, where: str) -> tuple[Any, Manifest | None]:
        """The value with each File / Dir in a list, tuple or dict stored and replaced by its
        manifest, in a ``Frozen``; the value as it is when it holds none."""
        parts: list[Part] = []
        objects: set[str] = set()

        def store(item: File | Dir, at: str) -> StoredFile | StoredDir:
            stored = self._store_dir(item, where, at) if isinstance(item, Dir) else self._store_file(item, where, at)
            kind = "dir" if isinstance(stored, StoredDir) else "file"
            size = stored.size if isinstance(stored, StoredFile) else sum(e[2] for e in stored.entries)
            parts.append(Part(at, kind, stored.path, stored.digest, size))
            if isinstance(stored, StoredFile):
                objects.add(stored.digest)
            else:
                objects.update(e[1] for e in stored.entries if e[1] is not None)
            return stored

        frozen = _replace(value, (File, Dir), store)
        if not parts:
            return value, None
        return Frozen(frozen), Manifest(tuple(parts), tuple(sorted(objects)))

    def _store_file(self, file: File, where: str, at: str) -> StoredFile:
        path = os.path.abspath(file.path)
        info = _stat(path, where, f"fk.File({file.path!r}){_at(at)}")
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder: return fk.Dir for it" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise SerializationError(f"{where}: it returned fk.File({file.path!r}){_at(at)}, which is {kind}")
        return StoredFile(path, self._copy_in(path, info.st_size, where), info.st_size)

    def _store_dir(self, folder: Dir, where: str, at: str) -> StoredDir:
        path = os.path.abspath(folder.path)
        shown = f"fk.Dir({folder.path!r}){_at(at)}"
        info = _stat(path, where, shown)
        if not stat.S_ISDIR(info.st_mode):
            kind = "a file: return fk.File for it" if stat.S_ISREG(info.st_mode) else "not a folder"
            raise SerializationError(f"{where}: it returned {shown}, which is {kind}")
        entries: list[tuple[str, str | None, int]] = []
        try:
            for entry in tree_entries(path):
                if entry.kind == "dir":
                    entries.append((entry.rel, None, 0))
                else:
                    entries.append((entry.rel, self._copy_in(entry.path, entry.size, where), entry.size))
        except Unstable as exc:
            raise SerializationError(f"{where}: it returned {shown}: {exc.reason}") from None
        except OSError as exc:
            raise SerializationError(f"{where}: it returned {shown}, which cannot be read: {exc}") from None
        return StoredDir(path, tree_digest((rel, digest) for rel, digest, _ in entries), tuple(entries))

    def _copy_in(self, path: str, size: int, where: str) -> str:
        """The file's bytes as an object (kept when an object of that size is there: the same
        bytes, by their digest); its digest. The copy is hashed as it is written: a file changed
        meanwhile is refused, never stored under the wrong name."""
        try:
            digest = file_digest(path, size)
            target = layout.object_path(digest)
            if self.fs.size(target) == size:
                self.fs.touch(target)  # fresh for gc: the record naming it is about to be written
                return digest
            copied = _copy_verified(path, self.fs.local(target), digest)
        except OSError as exc:
            raise SerializationError(f"{where}: cannot store the file {path}: {exc.strerror or exc}",
                                     hint="check that the step can read it and that the store has room") from None
        if not copied:
            raise SerializationError(f"{where}: the file {path} changed while it was being stored",
                                     hint="return fk.File(path) once the step has finished writing the file")
        return digest

    # thawing

    def thaw(self, value: Any) -> Any:
        """The value with each manifest replaced by an ``fk.File`` / ``fk.Dir`` whose path holds
        its bytes; anything else as it is."""
        if type(value) is not Frozen:
            return value
        done: dict[tuple[str, str], File | Dir] = {}

        def restore(item: StoredFile | StoredDir, at: str) -> File | Dir:
            if (item.path, item.digest) not in done:
                try:
                    done[item.path, item.digest] = (self._restore_dir(item) if isinstance(item, StoredDir)
                                                   else self._restore_file(item))
                except OSError as exc:
                    raise StoreError(f"cannot restore {item.path} (content {item.digest[:12]}) from the store "
                                     f"under {self.fs.local(layout.FILES)}: {exc.strerror or exc}",
                                     hint="check free space and permissions of the store") from None
            return done[item.path, item.digest]

        return _replace(value.value, (StoredFile, StoredDir), restore)

    def _restore_file(self, stored: StoredFile) -> File:
        if _holds(stored.path, stored.digest, stored.size):
            return File(stored.path)
        local = self.fs.local(layout.restored_path(stored.digest, _name(stored.path, "file")))
        if not _holds(str(local), stored.digest, stored.size):
            local.parent.mkdir(parents=True, exist_ok=True)
            self._copy_out(stored.digest, local)
        return File(str(local))

    def _restore_dir(self, stored: StoredDir) -> Dir:
        if _tree_holds(stored.path, stored.digest):
            return Dir(stored.path)
        name = _name(stored.path, "dir")
        local = self.fs.local(layout.restored_path(stored.digest, name))
        if _tree_holds(str(local), stored.digest):
            return Dir(str(local))
        build = local.parent / f".{name}{TEMPORARY_MARK}{os.getpid()}-{secrets.token_hex(4)}"
        build.mkdir(parents=True)
        try:
            for rel, digest, _size in stored.entries:
                target = build.joinpath(*_safe_parts(rel))
                if digest is None:
                    target.mkdir(parents=True, exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    self._copy_out(digest, target)
            _swap_in(build, local, stored.digest)
        finally:
            shutil.rmtree(build, ignore_errors=True)
        return Dir(str(local))

    def _copy_out(self, digest: str, target: Path) -> None:
        """Object ``digest`` copied to ``target`` (aside, then renamed), verified as it is copied;
        a missing or damaged object is CorruptObject (the damaged one removed)."""
        source = self.fs.local(layout.object_path(digest))
        try:
            sound = _copy_verified(str(source), target, digest)
        except FileNotFoundError:
            if source.is_file():
                raise
            raise CorruptObject(f"file object {digest} is missing") from None
        if not sound:
            self.fs.delete(layout.object_path(digest))
            raise CorruptObject(f"file object {digest} is corrupt (digest mismatch); removed")

    # what gc and verify ask

    def manifest(self, object_id: str) -> Manifest | None:
        """The manifest of an output object, or None (an output that holds no files, or a
        damaged manifest: ``cache verify`` reports those)."""
        data = loads_json(self.fs.read(layout.manifest_path(object_id)))
        if data is None:
            return None
        try:
            return Manifest.from_json(data)
        except PARSE_ERRORS:
            return None

    def manifests(self) -> Iterator[str]:
        """The output object of every manifest file in the store."""
        for path in self.fs.files(layout.MANIFESTS):
            object_id = layout.manifest_object(path)
            if object_id is not None:
                yield object_id

    def named(self, outputs: set[str]) -> tuple[set[str], set[str]]:
        """The file objects and restored digests the manifests of these output objects name."""
        objects: set[str] = set()
        restored: set[str] = set()
        for object_id in outputs:
            manifest = self.manifest(object_id)
            if manifest is not None:
                objects.update(manifest.objects)
                restored |= manifest.restored
        return objects, restored

    def sweep(self, outputs: set[str], restored: set[str], now: float, grace: float) -> tuple[int, int]:
        """``gc``'s part: remove the manifests of outputs not in ``outputs`` and the restored copies
        not in ``restored``, each once it is older than ``grace`` (a writer may be about to record
        it, a step may be reading it), and what killed restorers left; (files removed, bytes freed)."""
        removed, freed = 0, 0
        for object_id in list(self.manifests()):
            path = layout.manifest_path(object_id)
            mtime = self.fs.mtime(path)
            if object_id in outputs or mtime is None or now - mtime < grace:
                continue
            freed += self.fs.size(path) or 0
            self.fs.delete(path)
            removed += 1
        for digest in self.fs.folders(layout.FILES):
            folder = layout.restored_folder(digest)
            if digest in restored:  # a kept copy: only what killed restorers left beside it goes
                paths = [(f"{folder}/{name}", is_file) for names, is_file in ((self.fs.folders(folder), False),
                                                                              (self.fs.names(folder), True))
                         for name in names if name.startswith(".") and TEMPORARY_MARK in name]
            else:
                paths = [(folder, False)]
            for path, is_file in paths:
                mtime = self.fs.mtime(path)
                if mtime is None or now - mtime < grace:
                    continue
                freed += (self.fs.size(path) or 0) if is_file else sum(self.fs.size(p) or 0 for p in self.fs.files(path))
                if is_file:
                    self.fs.delete(path)
                else:
                    self.fs.delete_tree(path)
                removed += 1
        return removed, freed


# -- the run's data inputs -------------------------------------------------------------------------


def with_data_inputs(header: RunHeader) -> RunHeader:
    """The run header as the records keep it: ``fk.File`` / ``fk.Dir`` parameters as their paths,
    and each one's content digest as the run found it in ``data``. A file that cannot be read
    now gets no digest (its step says why: an unstable input)."""
    found = {name: value for name, value in header.params.items() if isinstance(value, (File, Dir))}
    if not found:
        return header
    data = dict(header.data)
    for name, value in found.items():
        path = os.path.abspath(value.path)
        try:
            if isinstance(value, Dir):
                digest = tree_digest((e.rel, None if e.kind == "dir" else file_digest(e.path, e.size))
                                     for e in tree_entries(path))
            else:
                digest = file_digest(path, os.stat(path).st_size)
        except (OSError, Unstable):
            continue
        data[name] = DataInput("dir" if isinstance(value, Dir) else "file", path, digest)
    params = {name: os.fspath(value) if name in found else value for name, value in header.params.items()}
    return attrs.evolve(header, params=params, data=data)


# -- helpers ---------------------------------------------------------------------------------------


def _replace(value: Any, kinds: tuple[type, ...], make: Callable[[Any, str], Any]) -> Any:
    """``value`` with every instance of ``kinds`` in nested lists, tuples and dicts replaced by
    ``make(item, where)``; containers without one are kept as they are (not copied), and each is
    searched once (a container that holds itself is not searched again). A container's item types
    are looked at first, in C: a list of a million numbers costs a few milliseconds, not a walk."""
    path: set[int] = set()

    def searched(item: Any) -> bool:
        found = set(map(type, item.values() if type(item) is dict else item))
        return any(cls in _CONTAINERS or issubclass(cls, kinds) for cls in found)

    def walk(item: Any, at: tuple[Any, ...], depth: int) -> Any:
        if isinstance(item, kinds):
            return make(item, "".join(f"[{key!r}]" for key in at))
        cls = type(item)
        if cls not in _CONTAINERS or depth >= _MAX_DEPTH or id(item) in path or not searched(item):
            return item
        path.add(id(item))
        try:
            if cls is dict:
                pairs = {key: walk(child, (*at, key), depth + 1) for key, child in item.items()}
                return pairs if any(pairs[key] is not child for key, child in item.items()) else item
            children = [walk(child, (*at, i), depth + 1) for i, child in enumerate(item)]
            if all(new is old for new, old in zip(children, item)):
                return item
            return children if cls is list else tuple(children)
        finally:
            path.discard(id(item))

    return walk(value, (), 0)


def _at(at: str) -> str:
    return f" (at {at})" if at else ""


def _stat(path: str, where: str, shown: str) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise SerializationError(f"{where}: it returned {shown}, but there is nothing at {path}",
                                 hint="write the file before returning it (a relative path is read from "
                                      f"{os.getcwd()})") from None
    except OSError as exc:
        raise SerializationError(f"{where}: it returned {shown}, which cannot be read: {exc.strerror or exc}") from None


def _name(path: str, default: str) -> str:
    """The last part of a path, as a file name to restore under."""
    name = os.path.basename(os.path.normpath(path))
    return name if name not in ("", ".", "..") else default


def _safe_parts(rel: str) -> list[str]:
    """A manifest's relative path as parts that stay inside the folder being restored."""
    parts = rel.split("/")
    if not rel or any(part in ("", ".", "..") for part in parts) or "\0" in rel:
        raise CorruptObject(f"a folder manifest names {rel!r}, which is not a path inside the folder")
    return parts


def _holds(path: str, digest: str, size: int) -> bool:
    """Whether a regular file at ``path`` has exactly these bytes."""
    try:
        info = os.stat(path)
        return stat.S_ISREG(info.st_mode) and info.st_size == size and file_digest(path, size) == digest
    except OSError:
        return False


def _tree_holds(path: str, digest: str) -> bool:
    """Whether the folder at ``path`` has exactly this tree."""
    try:
        return tree_digest((e.rel, None if e.kind == "dir" else file_digest(e.path, e.size))
                           for e in tree_entries(path)) == digest
    except (OSError, Unstable):
        return False


def _copy_verified(source: str, target: Path, digest: str) -> bool:
    """Copy ``source`` to ``target`` through a temporary file beside it, hashing what is copied;
    renamed in only when the bytes hash to ``digest`` (False otherwise, and nothing is left)."""
    tmp = target.with_name(f".{target.name}{TEMPORARY_MARK}{os.getpid()}-{secrets.token_hex(4)}")
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    with open(source, "rb") as reader:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:
            tmp.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb") as writer:
                while chunk := reader.read(_CHUNK):
                    hasher.update(chunk)
                    writer.write(chunk)
            if hasher.hexdigest() != digest:
                tmp.unlink()
                return False
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return True


def _swap_in(build: Path, local: Path, digest: str) -> None:
    """Put the folder built aside at ``local``: in one rename where nothing is there; a damaged
    copy there is moved away first; a sound one another process put there meanwhile is kept."""
    try:
        os.rename(build, local)
        return
    except OSError:
        if _tree_holds(str(local), digest):
            return  # another process restored it first
    stale = local.with_name(f".{local.name}{TEMPORARY_MARK}stale-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        os.rename(local, stale)
    except FileNotFoundError:
        pass
    try:
        os.rename(build, local)
    except OSError:
        if not _tree_holds(str(local), digest):
            raise
    finally:
        shutil.rmtree(stale, ignore_errors=True)
