"""Calibration windows (``calibration/windows.py``): the selection is stratified and seeded,
fewer windows than asked uses all of them; a CalibrationSet checks its arrays and has a
fingerprint; the package imports without torch. Where the windows come from:
test_sources.py."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from mrm_edge.calibration.windows import CalibrationSet, select_windows

from mrm_edge.data.errors import DataError
from tests.calibration import LABELS

pytestmark = pytest.mark.realdata


def test_selection_is_stratified_rare_labels_over_represented(pool) -> None:
    cset = select_windows(pool, 100, seed=0)
    comp = cset.composition
    assert comp["labels"] == LABELS and comp["n_windows"] == 100 and comp["n_records"] == 100
    counts = comp["label_windows"]
    assert counts == {k: int(v) for k, v in zip(LABELS, cset.y.sum(axis=0), strict=True)}
    assert all(c > 0 for c in counts.values())
    available = comp["label_windows_available"]
    prevalence = {k: v / len(pool) for k, v in available.items()}
    share = {k: v / len(cset) for k, v in counts.items()}
    rarest = min(available, key=available.get)
    commonest = max(available, key=available.get)
    assert rarest == "HYP" and commonest == "NORM"
    assert share[rarest] > 2 * prevalence[rarest]  # 25 % of the set vs 7 % of the pool
    assert share[commonest] < prevalence[commonest]
    assert comp["seed"] == 0 and "round-robin over labels" in comp["selection"]
    assert not comp["all_used"] and "note" not in comp


def test_selection_is_deterministic_by_seed(pool) -> None:
    a, b, c = (select_windows(pool, 64, seed=s) for s in (7, 7, 8))
    assert a.record_ids == b.record_ids and a.x.tobytes() == b.x.tobytes()
    assert a.fingerprint() == b.fingerprint()
    assert a.record_ids != c.record_ids and a.fingerprint() != c.fingerprint()


def test_fewer_windows_than_requested_uses_all_and_says_so(pool) -> None:
    cset = select_windows(pool, 10_000, seed=0)
    assert len(cset) == len(pool) == 352
    assert (
        cset.composition["all_used"]
        and "fewer than the 10000 requested" in (cset.composition["note"])
    )


def test_calibration_set_checks_and_fingerprint(pool) -> None:
    cset = select_windows(pool, 8, seed=1)
    x = cset.x.copy()
    x[3, 5, 100] += 0.001  # one sample, 1 µV
    other = CalibrationSet(x, cset.record_ids, cset.y, cset.labels, cset.composition, 100)
    assert other.fingerprint() != cset.fingerprint()
    with pytest.raises(DataError, match=r"field 'x' has shape"):
        CalibrationSet(x[:, :6], cset.record_ids, None, [], {}, 100)
    with pytest.raises(DataError, match=r"'record_ids' has 7 entries, expected 8"):
        CalibrationSet(x, cset.record_ids[:7], None, [], {}, 100)
    x[0, 0, 0] = np.nan
    with pytest.raises(DataError, match=r"non-finite"):
        CalibrationSet(x, cset.record_ids, None, [], {}, 100)


def test_calibration_package_imports_without_torch() -> None:
    code = (
        "import sys, mrm_edge.calibration, mrm_edge.calibration.ranges, "
        "mrm_edge.calibration.cache, "
        "mrm_edge.export.int8; print('torch' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
