"""Shared fixtures: where the real (read-only) datasets live.

The data sits beside the repository at ``<repo>/../shared/data`` and is never copied into
it; ``MRM_EDGE_PTBXL`` / ``MRM_EDGE_CPSC2018`` point elsewhere. Tests that need it are
skipped with the reason when it is absent, so the suite still runs anywhere.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"

# auto's measured probe (runtime/cpu_timing.py) would time every CPU option on the first selection
# of each test model: off unless a test turns it on; and caches (OpenVINO's compiled models,
# the probe) go to a temporary directory, never the user's. Set before any subprocess starts.
os.environ.setdefault("MRM_EDGE_AUTO_PROBE", "0")
os.environ.setdefault("MRM_EDGE_CACHE_DIR", tempfile.mkdtemp(prefix="mrm-edge-test-cache-"))


def _dataset_root(env_var: str, default: Path, marker: str, what: str) -> Path:
    override = os.environ.get(env_var)
    root = Path(override) if override else default
    if not (root / marker).is_file():
        how = f"${env_var}" if override else f"the default (set ${env_var} to override)"
        pytest.skip(f"{what} not found at {root}: no {marker} there, from {how}")
    return root.resolve()


@pytest.fixture(scope="session")
def ptbxl_root() -> Path:
    """Root of a PTB-XL copy in PhysioNet layout (the 500-record subset by default)."""
    return _dataset_root(
        "MRM_EDGE_PTBXL", SHARED_DATA / "ptb-xl", "ptbxl_database.csv", "PTB-XL subset"
    )


@pytest.fixture(scope="session")
def cpsc_root() -> Path:
    """Root of a CPSC 2018 copy (the 10-recording sample by default)."""
    return _dataset_root(
        "MRM_EDGE_CPSC2018", SHARED_DATA / "cpsc2018", "REFERENCE.csv", "CPSC 2018 sample"
    )


# A small trained model directory shared by the export, CLI and runtime tests:
# a width-16 MRM-Net trained for three epochs on the real PTB-XL subset — tiny
# enough to export in seconds, trained enough that AUC changes mean something.
@pytest.fixture(scope="session")
def tiny_model_dir(ptbxl_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mrm_edge.training.trainer import TrainConfig, Trainer

    out = tmp_path_factory.mktemp("tiny-model")
    cfg = TrainConfig(
        data=str(ptbxl_root),
        out=str(out),
        epochs=3,
        seed=0,
        model_overrides={"width": 16, "stem_channels": (8, 8, 16, 16)},
    )
    return Trainer(cfg, log=lambda s: None).run()


@pytest.fixture(scope="session")
def real_windows(ptbxl_root: Path):
    """Fold-10 windows of the real subset, raw mV at 100 Hz, with labels."""
    from mrm_edge.data.loaders import load_dataset

    ds = load_dataset("ptbxl", ptbxl_root, task="superdiagnostic", sampling_rate=100)
    test = ds.select_folds([10])
    return test.x, test.y


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory):
    """Certificates made now with the ``openssl`` command (tests/runtime/sources/pki.py)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (apt-get install openssl)")
    from tests.runtime.sources.pki import make_pki

    return make_pki(tmp_path_factory.mktemp("pki"))


# The session's real tritonserver (tests/triton_fixtures.py): one for every test that uses it.
from tests.triton_fixtures import tiny_model, triton_served  # noqa: E402, F401
