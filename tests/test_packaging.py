"""Packaging: the stage packages map into mrm_edge, the edge path imports no torch,
and the console script runs."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_py(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/"
    )


def test_edge_modules_import_without_torch() -> None:
    r = run_py(
        "import sys, mrm_edge.runtime, mrm_edge.runtime.engine, mrm_edge.runtime.selection, "
        "mrm_edge.runtime.model, mrm_edge.runtime.sources.registry, mrm_edge.runtime.sources.tcp, "
        "mrm_edge.runtime.sender, mrm_edge.runtime.sinks.live, mrm_edge.runtime.backends, "
        "mrm_edge.calibration.windows, mrm_edge.export.int8, mrm_edge.cli.doctor, "
        "mrm_edge.data.dataset, mrm_edge.data.synthetic, mrm_edge.data.signal, mrm_edge.card, "
        "mrm_edge.metrics, mrm_edge.records, mrm_edge.cli, mrm_edge.runtime.web.server, "
        "mrm_edge.runtime.sinks.web, mrm_edge.runtime.sinks.fanout, mrm_edge.ecgplot; "
        "print('torch' in sys.modules)"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_stage_packages_live_at_the_top_level() -> None:
    r = run_py(
        "import mrm_edge.export as e, mrm_edge.runtime as r, mrm_edge.calibration as c; "
        "print(e.__file__); print(r.__file__); print(c.__file__)"
    )
    assert r.returncode == 0, r.stderr
    files = [Path(p) for p in r.stdout.split()]
    assert [f.parent for f in files] == [ROOT / "export", ROOT / "runtime", ROOT / "calibration"]


def test_console_script_help() -> None:
    exe = Path(sys.executable).parent / "mrm-edge"
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    for cmd in ("train", "eval", "predict"):
        assert cmd in r.stdout


def test_every_package_folder_is_in_the_wheel() -> None:
    """A folder of modules missing from pyproject's ``packages`` would be left out of a
    non-editable install (the editable one used here would not notice)."""
    import tomllib

    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setup["packages"])
    mapped = {folder: name for name, folder in setup["package-dir"].items()}
    found = set()
    for top, name in mapped.items():
        for init in (ROOT / top).rglob("*.py"):
            rel = init.parent.relative_to(ROOT / top)
            if "__pycache__" not in rel.parts:
                found.add(".".join([name, *rel.parts]))
    assert found <= listed, f"not in pyproject's packages: {sorted(found - listed)}"
