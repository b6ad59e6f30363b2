"""Shared fixtures: a fresh store per test, and flow modules written to disk and imported."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    """Write ``source`` as ``<name>.py`` under tmp_path and import it fresh (a rewrite re-imports)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written: list[str] = []

    def write(source: str, name: str = "userflow") -> object:
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        sys.modules.pop(name, None)
        importlib.invalidate_caches()
        written.append(name)
        return importlib.import_module(name)

    yield write
    for name in written:
        sys.modules.pop(name, None)


def require_env(var: str, what: str) -> str:
    """The value of ``var``: CI must set it (a missing consumer fails there); elsewhere the test skips."""
    import os

    value = os.environ.get(var)
    if value:
        return value
    if os.environ.get("CI"):
        pytest.fail(f"{var} is not set: .ci/run must provide {what}")
    pytest.skip(f"{var} is not set ({what}); .ci/run sets it up")


def require_shared(relative: str) -> Path:
    """A file under ../shared (the Argo schema, Airflow constraints); skips where shared/ is absent."""
    path = SHARED / relative
    if not path.exists():
        import os

        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: CI always has ../shared")
        pytest.skip(f"{path} is absent (a clone outside the workplace)")
    return path
