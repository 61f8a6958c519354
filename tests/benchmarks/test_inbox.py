"""python -m benchmarks.inbox at a small size: a real monitor on a real inbox of PTB-XL
records, every record done, a positive rate and a backend share below the whole."""

from __future__ import annotations

import pytest

from benchmarks.inbox import PTBXL, measure


@pytest.mark.realdata
def test_inbox_throughput_small() -> None:
    if not PTBXL.is_dir():
        pytest.skip(f"PTB-XL records not found at {PTBXL}")
    r = measure(records=6, backend="onnxruntime", precision=None, max_delay_ms=5.0)
    assert r["states"] == {"done": 6} and r["windows"] == 6
    assert r["files_per_s"] > 0 and 0 < r["backend_ms_per_file"] < r["ms_per_file"]
