"""Where the user's own code ends: not the standard library, site-packages or flowkit (SPEC §4).
One line, drawn here for both the step keys (``keys.code``) and a script's imports (``fk.steps``)."""

from __future__ import annotations

import functools
import os
import sysconfig


@functools.lru_cache(maxsize=4096)
def is_user_path(path: str) -> bool:
    """Whether a source file is the user's: outside the standard library, site-packages and flowkit."""
    real = os.path.realpath(path)
    if {"site-packages", "dist-packages"} & set(real.split(os.sep)):
        return False
    return not any(real == root or real.startswith(root + os.sep) for root in _library_roots())


@functools.cache
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    flowkit_dir = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    return tuple({flowkit_dir, *(os.path.realpath(paths[key])
                                 for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths)})
