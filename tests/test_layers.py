"""The layers of the README's Layout, held: import-linter's contracts in pyproject.toml
(``[tool.importlinter]``: commands > stages > runtime > foundation; the runtime imports no
torch) run against the package as it installs, and a broken one fails with its violations.

import-linter reads the modules from the root package's folder, but export/, runtime/ and
calibration/ install inside ``mrm_edge`` from the top of the checkout (pyproject's
``package-dir``, mapped by the editable install at import time). So the check runs on a tree
laid out as installed, made of links to this checkout's files (fresh ones: a test adds a
module to it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def installed_layout(dest: Path) -> Path:
    """``dest/mrm_edge`` as the wheel lays it out (pyproject's ``package-dir``), each entry a
    link into the checkout, and the contracts' pyproject.toml beside it (where lint-imports
    looks for them)."""
    pyproject = ROOT / "pyproject.toml"
    package_dir = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-dir"]
    root = dest / "mrm_edge"
    root.mkdir()
    for entry in (ROOT / package_dir["mrm_edge"]).iterdir():
        if entry.name != "__pycache__":
            (root / entry.name).symlink_to(entry)
    for name, folder in package_dir.items():
        if name != "mrm_edge":
            parent, _, child = name.rpartition(".")
            assert parent == "mrm_edge", f"{name}: only mrm_edge's children are mapped here"
            (root / child).symlink_to(ROOT / folder)
    (dest / "pyproject.toml").symlink_to(pyproject)
    return dest


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    assert LINT_IMPORTS.exists(), f"{LINT_IMPORTS} missing: install the `dev` extra"
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_layers_hold(tmp_path: Path) -> None:
    r = lint_imports(installed_layout(tmp_path))
    if r.returncode != 0:  # the report without import-linter's banner
        pytest.fail(f"{r.stdout[r.stdout.find('Contracts') :]}{r.stderr}", pytrace=False)
    assert "Contracts: 2 kept, 0 broken." in r.stdout, r.stdout


def test_a_runtime_module_importing_a_command_breaks_the_contract(tmp_path: Path) -> None:
    """The check can fail: a lazy import of the CLI from a copy of the runtime is found."""
    tree = installed_layout(tmp_path)
    (tree / "mrm_edge" / "runtime").unlink()
    runtime = tree / "mrm_edge" / "runtime"
    runtime.mkdir()
    for entry in (ROOT / "runtime").iterdir():
        (runtime / entry.name).symlink_to(entry)
    (runtime / "upward.py").write_text(
        "def main():\n    from mrm_edge.cli import main\n\n    import torch\n"
    )
    r = lint_imports(tree)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "mrm_edge.runtime.upward -> mrm_edge.cli" in r.stdout, r.stdout
    assert "mrm_edge.runtime.upward -> torch" in r.stdout, r.stdout
    assert "Contracts: 0 kept, 2 broken." in r.stdout, r.stdout


def test_a_module_without_a_layer_breaks_the_contract(tmp_path: Path) -> None:
    """Exhaustive: a new module of mrm_edge must be placed in a layer."""
    tree = installed_layout(tmp_path)
    (tree / "mrm_edge" / "unplaced.py").write_text("")
    r = lint_imports(tree)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "mrm_edge.unplaced" in r.stdout, r.stdout
