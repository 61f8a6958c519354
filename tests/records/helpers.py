"""What the format readers' tests share: the real files, the PTB-XL records the round trips
start from, the shipped model, one-line and memory checks."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from mrm_edge.artifacts import default_model_dir
from mrm_edge.data.errors import DataError
from mrm_edge.predict import classify
from mrm_edge.records import Recording, read_recording
from tests.conftest import SHARED_DATA

VENDOR = SHARED_DATA / "vendor-ecg"
#: 10 s at 500 Hz and at 100 Hz, 12 leads, 1 µV resolution.
PTBXL = ("records500/00000/00001_hr", "records100/00000/00001_lr")
#: The shipped model's INT8 outputs (what ONNX Runtime CPU picks) step by ~0.004: a
#: probability may move a step or two when the input moves by its quantisation.
PROBABILITY_TOLERANCE = 0.01


def shared_file(rel: str) -> Path:
    path = SHARED_DATA / rel
    if not path.exists():
        pytest.skip(f"shared data not found: {path}")
    return path


def ptbxl(rel: str) -> Recording:
    return read_recording(shared_file(f"ptb-xl/{rel}.hea"))


def shipped_model() -> Path:
    model = default_model_dir()
    if not (model / "model.onnx").is_file():
        pytest.skip(f"shipped model not found at {model}")
    return model


def assert_classified_alike(
    original: Recording, back: Recording, tolerance: float = PROBABILITY_TOLERANCE
) -> None:
    """Both classified window by window with the same positive labels and probabilities
    within ``tolerance``."""
    results, _ = classify([original, back], shipped_model(), backend="onnxruntime")
    half = len(results) // 2
    assert half >= 1 and all(r.status == "ok" for r in results)
    for a, b in zip(results[:half], results[half:], strict=True):
        assert a.positive == b.positive
        gap = max(abs(a.probabilities[k] - b.probabilities[k]) for k in a.probabilities)
        assert gap <= tolerance, (a.probabilities, b.probabilities)


def refused(path: Path, *needles: str) -> str:
    """The one-line DataError reading ``path`` gives; it names the file and ``needles``."""
    with pytest.raises(DataError) as info:
        read_recording(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg, msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    return msg


def peak_bytes(call: Callable[[], object]) -> int:
    """The peak of memory Python and numpy allocate while ``call`` runs."""
    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak
