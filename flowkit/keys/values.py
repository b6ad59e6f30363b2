"""Canonical fingerprints of values: the hashed value parts of a cache key (SPEC §4); the code part
is ``keys.code``, which also registers how a function passed as a value is fingerprinted.

A value is written into one BLAKE3 hasher as a stream of type tags and length-prefixed tokens, so
two different values never give the same stream and nothing depends on ``PYTHONHASHSEED`` or on
memory addresses. numpy, pandas and dill are imported only when a value needs them, which keeps
``import flowkit`` fast.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import dataclasses
import enum
import functools
import importlib
import io
import os
import pathlib
import re
import stat
import threading
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs
import blake3 as _blake3

from flowkit.authoring.files import Dir, File
from flowkit.errors import Unstable

SCHEME_VERSION: str = "1"

_LARGE = 1 << 20  # buffers from 1 MiB on are hashed apart, on all cores
_CHUNK = 16 << 20  # bytes copied at a time when a non-contiguous array must be made contiguous
_MAX_DEPTH = 150  # nesting levels; well inside Python's recursion limit
_PICKLE_PROTOCOL = 4
_ADDRESS = re.compile(rb"0x[0-9a-fA-F]{8,}")
SIMPLE_TYPES = (int, float, complex, str, bytes, bool, type(None))

Fingerprinter = Callable[[Any, "Feed"], None]


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    """Hex BLAKE3-256 of a buffer, read in place; large buffers are hashed on every core."""
    return _hasher_for(memoryview(data).nbytes).update(data).hexdigest()


def _hasher_for(size: int) -> Any:
    """A hasher that only starts worker threads when the input is big enough to repay them."""
    return _blake3.blake3(max_threads=_blake3.blake3.AUTO if size >= _LARGE else 1)


class Feed:
    """The token stream a fingerprinter writes into; it also carries the cycle guard."""

    __slots__ = ("_hasher", "_path")

    def __init__(self, path: list[int] | None = None) -> None:
        self._hasher = _blake3.blake3()
        self._path = [] if path is None else path  # ids of the values being written, outermost first

    def write_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """One length-prefixed token; a large buffer is written as its own digest, computed on all cores."""
        size = memoryview(data).nbytes
        if size >= _LARGE:
            self._hasher.update(b"D" + bytes.fromhex(hash_bytes(data)))
        else:
            self._hasher.update(b"B" + size.to_bytes(8, "little"))
            self._hasher.update(data)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode("utf-8", "surrogatepass"))

    def write_int(self, number: int) -> None:
        """Two's complement bytes: exact for any size, unlike ``str(int)`` which has a digit limit."""
        self.write_bytes(number.to_bytes((number.bit_length() + 8) // 8, "little", signed=True))

    def write_value(self, value: object) -> None:
        """Write a nested value, refusing cycles and runaway nesting instead of overflowing the stack."""
        if id(value) in self._path:
            raise Unstable(f"self-referencing {type_name(value)} cannot be fingerprinted")
        if len(self._path) >= _MAX_DEPTH:
            raise Unstable(f"{type_name(value)} is nested more than {_MAX_DEPTH} levels deep")
        self._path.append(id(value))
        try:
            _write(value, self)
        finally:
            self._path.pop()

    def digest_of(self, value: object) -> bytes:
        """A nested value's own digest, for containers whose entries must be sorted first."""
        feed = Feed(self._path)
        feed.write_value(value)
        return feed.digest()

    def digest(self) -> bytes:
        return self._hasher.digest()


# id -> (value, digest) of large values fingerprinted in this pass (see ``one_pass``)
_PASS: contextvars.ContextVar[dict[int, tuple[object, str]] | None] = contextvars.ContextVar("flowkit_pass", default=None)


@contextlib.contextmanager
def one_pass() -> Iterator[None]:
    """While no user code runs, a large value fingerprinted twice is hashed once: a flow's body and
    its step reading one 400 MB array (the graph check, then the argument's key part). User code
    may change values in place, so whatever runs it calls ``forget_pass()`` first."""
    token = _PASS.set({})
    try:
        yield
    finally:
        _PASS.reset(token)


def forget_pass() -> None:
    """User code is about to run: what this pass remembered may no longer hold."""
    memo = _PASS.get()
    if memo:
        memo.clear()


def fingerprint(value: object) -> str:
    """Canonical hex digest of a value: equal for equal content in any process, on any machine."""
    memo = _PASS.get()
    if memo is not None and _is_large(value):
        held = memo.get(id(value))
        if held is not None and held[0] is value:
            return held[1]
        digest = _fingerprint(value)
        memo[id(value)] = (value, digest)
        return digest
    return _fingerprint(value)


def _is_large(value: object) -> bool:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value) >= _LARGE
    cls = type(value)  # a numpy array, found without importing numpy or asking a user's object
    return cls.__name__ == "ndarray" and cls.__module__ == "numpy" and value.nbytes >= _LARGE  # type: ignore[attr-defined]


def _fingerprint(value: object) -> str:
    feed = Feed()
    try:
        feed.write_value(value)
    except RecursionError:
        raise Unstable(f"{type_name(value)} is nested too deeply to fingerprint") from None
    return feed.digest().hex()


def register_fingerprint(
    cls: type, fn: Fingerprinter | None = None, *, tag: str | None = None
) -> Callable[[Fingerprinter], Fingerprinter] | Fingerprinter:
    """Teach ``fingerprint`` a type: ``fn(value, feed)`` writes the value's content into ``feed``.

    The tag (default: the type's qualname) and, for a subclass, the subclass's qualname are written
    first, so equal content of different types never shares a digest. Usable as a decorator.
    """

    def register(fn: Fingerprinter) -> Fingerprinter:
        _fingerprinter.register(cls, _tagged(tag or cls.__qualname__, cls, fn))
        return fn

    return register if fn is None else register(fn)


def _tagged(tag: str, cls: type, fn: Fingerprinter) -> Fingerprinter:
    def write(value: Any, feed: Feed) -> None:
        feed.write_text(tag)
        feed.write_text("" if type(value) is cls else type(value).__qualname__)
        fn(value, feed)

    return write


def _write(value: object, feed: Feed) -> None:
    """Dispatch on the value's type, registering numpy and pandas the first time one of theirs is seen."""
    cls = type(value)
    module = getattr(cls, "__module__", None) or ""
    register_lazily = _LAZY.get(module.partition(".")[0])
    if register_lazily is not None:
        register_lazily()
    # An IntEnum is an int first in its MRO; it must still be written as an enum member.
    _fingerprinter.dispatch(enum.Enum if isinstance(value, enum.Enum) else cls)(value, feed)


def type_name(value: object) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


# --- everything not registered: dataclasses, attrs classes, then dill ----------------------------


_CLASS_CODE: list[Callable[[type], str | None]] = []  # keys.code's: the code digest of a user's class


def register_class_code(fn: Callable[[type], str | None]) -> None:
    """Let objects of the user's own classes carry their class's code: an instance passed to a step,
    or read from a global, behaves as its methods say, so a change in them must change the key."""
    _CLASS_CODE[:] = [fn]


def _write_object(value: Any, feed: Feed) -> None:
    """Dataclasses and attrs classes by field, plain objects by class name and ``__dict__``;
    anything else by its pickle, if that is stable. Objects of the user's classes add the class's code."""
    code = _CLASS_CODE[0](type(value)) if _CLASS_CODE else None
    if code is not None:
        feed.write_text("class-code")
        feed.write_text(code)
    state = _plain_state(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        kind, names = "dataclass", [field.name for field in dataclasses.fields(value)]
    elif attrs.has(type(value)):
        kind, names = "attrs", [field.name for field in attrs.fields(type(value))]
    elif state is not None and (digest := _digest_or_none(feed, state)) is not None:
        feed.write_text("plain")
        feed.write_text(type(value).__qualname__)
        feed.write_bytes(digest)
        return
    else:
        feed.write_text("pickle")
        feed.write_bytes(_stable_pickle(value))
        return
    feed.write_text(kind)
    feed.write_int(len(names))
    for name in names:
        feed.write_text(name)
        feed.write_value(getattr(value, name))


def _plain_state(value: object) -> dict[str, Any] | None:
    """The ``__dict__`` of an object whose pickle is nothing more than it (no ``__slots__``, no
    custom ``__reduce__`` or ``__getstate__``): fingerprinted as data, it does not depend on the
    module path or on the order of a set of strings, as its pickle would."""
    cls = type(value)
    state = getattr(value, "__dict__", None)
    if not isinstance(state, dict) or "__slots__" in vars(cls) or isinstance(value, type):
        return None
    plain = (cls.__reduce_ex__ is object.__reduce_ex__ and cls.__reduce__ is object.__reduce__
             and getattr(cls, "__getstate__", object.__getstate__) is object.__getstate__)
    return state if plain else None


def _digest_or_none(feed: Feed, state: dict[str, Any]) -> bytes | None:
    """The state's digest, or None where it cannot be had (a cycle, say): then the pickle decides."""
    try:
        return feed.digest_of(state)
    except Unstable:
        return None


def _stable_pickle(value: object) -> bytes:
    """dill's bytes for the value, refused when they would not be the same in another process."""
    dill = importlib.import_module("dill")
    try:
        first = dill.dumps(value, protocol=_PICKLE_PROTOCOL)
        second = dill.dumps(value, protocol=_PICKLE_PROTOCOL)
    except Exception as exc:  # pickling fails with TypeError, PicklingError, AttributeError and more
        raise Unstable(f"{type_name(value)} object cannot be fingerprinted: dill cannot pickle it ({exc})") from None
    if first != second:
        raise Unstable(f"{type_name(value)} object cannot be fingerprinted: it pickles differently each time")
    if _ADDRESS.search(first):
        raise Unstable(f"{type_name(value)} object cannot be fingerprinted: its pickle contains a memory address")
    return first


_fingerprinter = functools.singledispatch(_tagged("object", object, _write_object))


# --- builtins ------------------------------------------------------------------------------------


@register_fingerprint(type(None), tag="none")
def _write_none(value: None, feed: Feed) -> None:
    return None


@register_fingerprint(bool, tag="bool")
def _write_bool(value: bool, feed: Feed) -> None:
    feed.write_bytes(b"\x01" if value else b"\x00")


@register_fingerprint(int, tag="int")
def _write_int(value: int, feed: Feed) -> None:
    feed.write_int(value)


@register_fingerprint(float, tag="float")
def _write_float(value: float, feed: Feed) -> None:
    feed.write_text(float.hex(value))


@register_fingerprint(complex, tag="complex")
def _write_complex(value: complex, feed: Feed) -> None:
    feed.write_text(float.hex(value.real))
    feed.write_text(float.hex(value.imag))


@register_fingerprint(str, tag="str")
def _write_str(value: str, feed: Feed) -> None:
    feed.write_text(value)


@register_fingerprint(bytes, tag="bytes")
@register_fingerprint(bytearray, tag="bytearray")
def _write_buffer(value: bytes | bytearray, feed: Feed) -> None:
    feed.write_bytes(value)


@register_fingerprint(memoryview, tag="memoryview")
def _write_memoryview(value: memoryview, feed: Feed) -> None:
    feed.write_text(value.format)
    feed.write_value(value.shape)
    feed.write_bytes(value if value.c_contiguous else value.tobytes())


@register_fingerprint(tuple, tag="tuple")
@register_fingerprint(list, tag="list")
def _write_sequence(value: tuple[Any, ...] | list[Any], feed: Feed) -> None:
    feed.write_int(len(value))
    for item in value:
        feed.write_value(item)


@register_fingerprint(dict, tag="dict")
def _write_dict(value: dict[Any, Any], feed: Feed) -> None:
    """Entries sorted by their digests: insertion order does not change the key."""
    entries = sorted((feed.digest_of(key), feed.digest_of(item)) for key, item in value.items())
    feed.write_int(len(entries))
    for key, item in entries:
        feed.write_bytes(key + item)


@register_fingerprint(set, tag="set")
@register_fingerprint(frozenset, tag="frozenset")
def _write_set(value: set[Any] | frozenset[Any], feed: Feed) -> None:
    """Elements sorted by digest: iteration order follows PYTHONHASHSEED, the digest must not."""
    digests = sorted(feed.digest_of(item) for item in value)
    feed.write_int(len(digests))
    for digest in digests:
        feed.write_bytes(digest)


@register_fingerprint(enum.Enum, tag="enum")
def _write_enum(value: enum.Enum, feed: Feed) -> None:
    """Name and value: a member whose value changed behaves differently."""
    feed.write_text(value.name)
    feed.write_value(value.value)


@register_fingerprint(collections.OrderedDict, tag="OrderedDict")
def _write_ordered_dict(value: collections.OrderedDict[Any, Any], feed: Feed) -> None:
    """Entries in order: an OrderedDict's order is part of its value (unlike a dict's)."""
    feed.write_int(len(value))
    for key, item in value.items():
        feed.write_value(key)
        feed.write_value(item)


@register_fingerprint(functools.partial, tag="partial")
def _write_partial(value: functools.partial[Any], feed: Feed) -> None:
    """The function (by its code, like a step) and the arguments it was given."""
    feed.write_value(value.func)
    feed.write_value(value.args)
    feed.write_value(dict(value.keywords))


@register_fingerprint(pathlib.PurePath, tag="path")
def _write_path(value: pathlib.PurePath, feed: Feed) -> None:
    """A path is its text: a step that wants the content takes ``fk.File``."""
    feed.write_text(os.fspath(value))


@register_fingerprint(File, tag="File")
def _write_file(value: File, feed: Feed) -> None:
    """Content only, so a moved or renamed identical file keeps its key; read by mmap on all cores."""
    try:
        info = os.stat(value.path)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder (pass fk.Dir)" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise Unstable(f"File {value.path!r} is {kind}")
        digest = file_digest(value.path, info.st_size)
    except OSError as exc:
        raise Unstable(f"File {value.path!r} cannot be read: {exc}") from None
    feed.write_bytes(bytes.fromhex(digest))


@register_fingerprint(Dir, tag="Dir")
def _write_dir(value: Dir, feed: Feed) -> None:
    """The tree only (names under the folder and each file's bytes), so a moved identical folder
    keeps its key; each file is hashed as ``fk.File`` hashes it, never read whole into memory."""
    try:
        digest = tree_digest((entry.rel, None if entry.kind == "dir" else file_digest(entry.path, entry.size))
                             for entry in tree_entries(value.path))
    except OSError as exc:
        raise Unstable(f"Dir {value.path!r} cannot be read: {exc}") from None
    feed.write_bytes(bytes.fromhex(digest))


def file_digest(path: str, size: int | None = None) -> str:
    """Hex BLAKE3 of a file's bytes: the id its copy has among a store's objects. Large files are
    read by mmap on every core, small ones in one read (a folder of many small files)."""
    if size is not None and size < _LARGE:
        with open(path, "rb") as handle:
            return hash_bytes(handle.read())
    return _blake3.blake3(max_threads=_blake3.blake3.AUTO).update_mmap(path).hexdigest()


@attrs.frozen
class TreeEntry:
    """One name under a folder: ``rel`` is "/"-separated from the folder, ``kind`` file | dir."""

    rel: str
    kind: str
    path: str
    size: int = 0


def tree_entries(root: str) -> Iterator[TreeEntry]:
    """Everything under ``root``, depth first with each folder's names sorted: one order on every
    machine. Hidden files count; symbolic links count as what they point at (a data folder of links
    into a download cache is keyed by its content). A broken link, a link back into a folder above
    it, or a special file (fifo, socket, device: no content to key) raises ``Unstable`` naming it."""
    top = os.stat(root)
    if not stat.S_ISDIR(top.st_mode):
        raise Unstable(f"Dir {root!r} is {'a file (pass fk.File)' if stat.S_ISREG(top.st_mode) else 'not a folder'}")
    yield from _walk(root, root, "", ((top.st_dev, top.st_ino),))


def _walk(root: str, folder: str, prefix: str, above: tuple[tuple[int, int], ...]) -> Iterator[TreeEntry]:
    for name in sorted(os.listdir(folder)):
        path, rel = os.path.join(folder, name), prefix + name
        try:
            info = os.stat(path)
        except FileNotFoundError:
            why = "is a broken symbolic link" if os.path.islink(path) else "was removed while it was read"
            raise Unstable(f"Dir {root!r}: {rel!r} {why}") from None
        if stat.S_ISDIR(info.st_mode):
            if (info.st_dev, info.st_ino) in above:
                raise Unstable(f"Dir {root!r}: {rel!r} links back to a folder above it (a loop)")
            yield TreeEntry(rel, "dir", path)
            yield from _walk(root, path, rel + "/", (*above, (info.st_dev, info.st_ino)))
        elif stat.S_ISREG(info.st_mode):
            yield TreeEntry(rel, "file", path, info.st_size)
        else:
            raise Unstable(f"Dir {root!r}: {rel!r} is a special file (fifo, socket or device), which has no "
                           "content to key; move it out of the folder")


def tree_digest(entries: Iterable[tuple[str, str | None]]) -> str:
    """Hex digest of a tree from its ``(relative path, file digest or None for a folder)`` entries in
    ``tree_entries`` order; the same for a folder on disk and for the store's manifest of it."""
    hasher = _blake3.blake3(b"flowkit-tree/1")
    for rel, digest in entries:
        name = os.fsencode(rel)
        hasher.update((b"d" if digest is None else b"f") + len(name).to_bytes(8, "little") + name)
        if digest is not None:
            hasher.update(bytes.fromhex(digest))
    return hasher.hexdigest()


def register_stand_in(cls: type, stands_for: Callable[[Any], object]) -> None:
    """Fingerprint ``cls`` with no tag of its own, as the value ``stands_for(obj)`` gives: the store
    keeps an output that held ``fk.File`` parts as an envelope around its manifest, whose digest
    must be the one the output had as the step returned it."""
    _fingerprinter.register(cls, lambda value, feed: feed.write_value(stands_for(value)))


@register_fingerprint(types.CodeType, tag="code")
def _write_code(value: types.CodeType, feed: Feed) -> None:
    """Bytecode, names and constants, without file names or line numbers: the fallback for sourceless code."""
    feed.write_bytes(value.co_code)
    feed.write_value(value.co_names)
    feed.write_value(value.co_varnames)
    feed.write_value(value.co_freevars)
    feed.write_value(value.co_consts)


def _refuse(why: str) -> Fingerprinter:
    def refuse(value: Any, feed: Feed) -> None:
        raise Unstable(f"{type_name(value)} object cannot be fingerprinted: {why}")

    return refuse


for _cls, _why in (
    (types.GeneratorType, "it is consumed by iterating it"),
    (types.AsyncGeneratorType, "it is consumed by iterating it"),
    (types.CoroutineType, "it is consumed by awaiting it"),
    (io.IOBase, "an open file or stream has no stable content"),
    (type(threading.Lock()), "a lock is process state"),
    (type(threading.RLock()), "a lock is process state"),
):
    register_fingerprint(_cls, _refuse(_why))
del _cls, _why


# --- numpy and pandas, registered on first sight ---------------------------------------------------


@functools.cache
def _register_numpy() -> None:
    import numpy as np

    register_fingerprint(np.ndarray, _write_ndarray, tag="ndarray")
    register_fingerprint(np.ma.MaskedArray, _write_masked, tag="masked")
    register_fingerprint(np.generic, _write_np_scalar, tag="np.scalar")


def _dtype_text(dtype: Any) -> str:
    """``dtype.str`` names byte order and item size; structured dtypes also need their fields."""
    return dtype.str if dtype.fields is None else repr(dtype.descr)


def _write_ndarray(value: Any, feed: Feed) -> None:
    feed.write_text(_dtype_text(value.dtype))
    feed.write_value(value.shape)
    if value.dtype.hasobject:
        for item in value.reshape(-1).tolist():
            feed.write_value(item)
    else:
        feed.write_bytes(_array_digest(value))


def _array_digest(value: Any) -> bytes:
    """Digest of the array's bytes in C order: in place when contiguous, else in bounded chunks."""
    import numpy as np

    hasher = _hasher_for(value.nbytes)
    if value.flags.c_contiguous:
        hasher.update(memoryview(value.reshape(-1).view(np.uint8)))
        return hasher.digest()
    rows = max(1, _CHUNK // max(1, value[0].nbytes))
    for start in range(0, value.shape[0], rows):
        chunk = np.ascontiguousarray(value[start : start + rows])
        hasher.update(memoryview(chunk.reshape(-1).view(np.uint8)))
    return hasher.digest()


def _write_masked(value: Any, feed: Feed) -> None:
    import numpy as np

    feed.write_value(np.ma.getdata(value))
    feed.write_value(np.ma.getmaskarray(value))


def _write_np_scalar(value: Any, feed: Feed) -> None:
    feed.write_text(_dtype_text(value.dtype))
    feed.write_bytes(value.tobytes())


@functools.cache
def _register_pandas() -> None:
    import pandas as pd

    register_fingerprint(pd.Index, _write_pd_index, tag="pd.Index")
    register_fingerprint(pd.Series, _write_pd_series, tag="pd.Series")
    register_fingerprint(pd.DataFrame, _write_pd_frame, tag="pd.DataFrame")


def _write_pd_index(value: Any, feed: Feed) -> None:
    feed.write_value(list(value.names))
    _write_pd_values(value, feed)


def _write_pd_series(value: Any, feed: Feed) -> None:
    feed.write_value(value.name)
    feed.write_value(value.index)
    _write_pd_values(value, feed)


def _write_pd_frame(value: Any, feed: Feed) -> None:
    feed.write_value(value.columns)
    feed.write_value(value.index)
    for position in range(value.shape[1]):
        _write_pd_values(value.iloc[:, position], feed)


def _write_pd_values(value: Any, feed: Feed) -> None:
    """Dtype and values: numeric data as a numpy buffer, object data element by element."""
    import pandas as pd

    feed.write_text(str(value.dtype))
    if isinstance(value.dtype, pd.CategoricalDtype):
        categorical = pd.Categorical(value)
        feed.write_value(categorical.categories)
        feed.write_value(bool(categorical.ordered))
        feed.write_value(categorical.codes)
    else:
        feed.write_value(value.to_numpy())


_LAZY: dict[str, Callable[[], None]] = {"numpy": _register_numpy, "pandas": _register_pandas}
