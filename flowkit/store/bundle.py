"""Code shipping: a flow's own source files as one content-addressed package in the store.

``flowkit compile --bundle`` zips the project's Python files (deterministically: sorted, fixed
timestamps) into the store; ``run-step --bundle DIGEST`` unpacks it once per store and imports
the flow from it, so any image or worker that has flowkit runs exactly the code that was
compiled, helpers included.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import zipfile
from pathlib import Path

from flowkit.errors import CompileError, StoreError
from flowkit.store import layout
from flowkit.store.store import Store

MAX_BYTES = 50 * 2**20
_SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", "build", "dist"}


def project_files(root: Path) -> list[Path]:
    """Every .py file under ``root``, minus hidden folders, virtualenvs and build output."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS
                         and not (Path(folder) / d / "pyvenv.cfg").exists())
        found += [Path(folder) / f for f in sorted(files) if f.endswith(".py")]
    return found


def make_bundle(root: Path) -> bytes:
    """The zip of the project's Python files; the same files give the same bytes."""
    buffer = io.BytesIO()
    total = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in project_files(root):
            data = path.read_bytes()
            total += len(data)
            if total > MAX_BYTES:
                raise CompileError(f"--bundle: the Python files under {root} exceed {MAX_BYTES // 2**20} MB",
                                   hint="compile from the project folder, or ship the code in the image instead")
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def bundle_root(flow_file: Path, workdir: Path) -> Path:
    """The project folder to ship: the working folder when it holds the flow, else the flow's folder."""
    return workdir if flow_file.is_relative_to(workdir) else flow_file.parent


def unpack(store: Store, digest: str) -> Path:
    """The bundle's folder in the store, unpacked once (to a temporary name, then renamed)."""
    target = store.fs.local(layout.bundle_folder(digest))
    if target.is_dir():
        return target
    data = store.objects.get_bytes(digest)
    temporary = target.with_name(f".{digest}.tmp-{os.getpid()}")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            archive.extractall(temporary)
        os.replace(temporary, target)
    except OSError:
        shutil.rmtree(temporary, ignore_errors=True)
        if not target.is_dir():
            raise StoreError(f"cannot unpack bundle {digest} into {target}",
                             hint="check that the store is writable from this machine") from None
    return target


def activate(store: Store, digest: str, flow_ref: str) -> str:
    """Unpack the bundle, put it first on sys.path, and return the flow reference inside it."""
    root = unpack(store, digest)
    sys.path.insert(0, str(root))
    return str(root / flow_ref)
