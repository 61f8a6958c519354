"""Fixtures shared by the calibration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.calibration import ptbxl_pool


@pytest.fixture(scope="module")
def pool(ptbxl_root: Path):
    """The PTB-XL calibration pool of :func:`tests.calibration.make_card` (read once)."""
    return ptbxl_pool(ptbxl_root)
