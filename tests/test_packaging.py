"""The wheel ships the core, the backends and the templates under their import names."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_contains_backends_and_templates(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(REPO)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("flowkit-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"flowkit/__init__.py", "flowkit/cli/__init__.py", "flowkit/store/store.py", "flowkit/backends/__init__.py",
            "flowkit/backends/runners/local.py", "flowkit/backends/compilers/argo.py", "flowkit/templates/__init__.py"} <= names
    templates = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "templates").rglob("*.j2"))
    assert {"flowkit/" + t for t in templates} <= names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "flowkit = flowkit.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_import_flowkit_stays_light() -> None:
    code = ("import sys, flowkit; heavy = {'networkx', 'numpy', 'pandas', 'dill', 'jinja2', 'docker'} & set(sys.modules);"
            "print(sorted(heavy))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
