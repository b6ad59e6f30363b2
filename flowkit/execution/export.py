"""``flowkit output --to FILE``: a step's value written in the format its type and the file's
suffix call for, so that the next tool (pandas, numpy, a text editor) opens it as it is."""

from __future__ import annotations

import os
import pickle
import reprlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from flowkit.errors import UsageError

_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxlevel = 400, 400, 20, 20, 4
_MAX_LINES = 40


def short_repr(value: Any) -> str:
    """A readable form that stays on one screen: pandas and numpy abbreviate themselves."""
    module = type(value).__module__.split(".")[0]
    text = repr(value) if module in ("pandas", "numpy") else _SHORT.repr(value)
    lines = text.splitlines()
    if len(lines) > _MAX_LINES:
        lines = lines[:_MAX_LINES] + [f"... ({len(lines) - _MAX_LINES} more lines)"]
    return "\n".join(lines)


def export(value: Any, target: Path, *, what: str) -> str:
    """Write ``value`` to ``target`` (atomically: a reader never sees half a file); returns the
    format used. ``what`` names the step for errors."""
    suffix = target.suffix.lower()
    fmt, write = _writer(value, suffix, what)
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "directory":
        write(target)
        return fmt
    handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return fmt


def _writer(value: Any, suffix: str, what: str) -> tuple[str, Any]:
    """The format and a function writing ``value`` to a path."""
    if suffix in (".pkl", ".pickle"):
        return "pickle", lambda path: _pickle(value, path)
    kind = type(value).__name__
    module = type(value).__module__.split(".")[0]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes", lambda path: path.write_bytes(bytes(value))
    path_of = getattr(value, "__fspath__", None)
    if path_of is not None and type(value).__module__.startswith("flowkit"):  # fk.File, fk.Dir
        source = Path(path_of())
        if source.is_dir():
            return "directory", lambda path: shutil.copytree(source, path, dirs_exist_ok=True)
        return "file", lambda path: shutil.copyfile(source, path)
    if module == "pandas" and kind in ("DataFrame", "Series"):
        if suffix == ".parquet":
            return "parquet", lambda path: _parquet(value, path, what)
        if suffix in (".csv", ""):
            return "csv", lambda path: value.to_csv(path)
        raise _unfit(what, kind, suffix, ".csv, .parquet or .pkl")
    if module == "numpy" and kind == "ndarray":
        if suffix == ".npy":
            return "npy", lambda path: _npy(value, path)
        if suffix in (".csv", ".txt") and value.ndim <= 2:
            import numpy as np

            return "csv", lambda path: np.savetxt(path, value, delimiter=",")
        raise _unfit(what, kind, suffix, ".npy, .csv (1 or 2 dimensions) or .pkl")
    if isinstance(value, str):
        return "text", lambda path: path.write_text(value)
    if suffix == ".json":
        return "json", lambda path: _json(value, path, what)
    return "pickle", lambda path: _pickle(value, path)


def _unfit(what: str, kind: str, suffix: str, fits: str) -> UsageError:
    return UsageError(f"{what}: a {kind} cannot be written as {suffix or 'a file without a suffix'}",
                      hint=f"name a file ending in {fits}")


def _npy(value: Any, path: Path) -> None:
    import numpy as np

    with open(path, "wb") as handle:  # a file object: np.save would add .npy to a temporary name
        np.save(handle, value, allow_pickle=False)


def _parquet(value: Any, path: Path, what: str) -> None:
    frame = value.to_frame() if type(value).__name__ == "Series" else value
    try:
        frame.to_parquet(path)
    except ImportError as exc:
        raise UsageError(f"{what}: writing Parquet needs pyarrow ({exc})",
                         hint="pip install pyarrow, or write .csv or .pkl") from None


def _json(value: Any, path: Path, what: str) -> None:
    import json

    try:
        path.write_text(json.dumps(value, indent=2, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{what}: the value is not JSON ({exc})", hint="write .pkl instead") from None


def _pickle(value: Any, path: Path) -> None:
    with open(path, "wb") as handle:
        try:
            pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError):
            import dill

            handle.seek(0)
            handle.truncate()
            dill.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
