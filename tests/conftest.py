"""Shared fixtures: where the real (read-only) datasets live.

The data sits beside the repository at ``<repo>/../shared/data`` and is never copied into
it; ``MRM_EDGE_PTBXL`` / ``MRM_EDGE_CPSC2018`` point elsewhere. Tests that need it are
skipped with the reason when it is absent, so the suite still runs anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


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
