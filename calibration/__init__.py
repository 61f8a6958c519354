"""Calibration stage (installed as ``mrm_edge.calibration``): INT8 calibration data.

- :mod:`.windows` — calibration windows and their stratified selection across labels;
- :mod:`.sources` — reading them from real ECG (PTB-XL / CPSC 2018 training folds only, or
  a folder of recordings), and the held-out windows for the accuracy gate;
- :mod:`.ranges` — activation ranges with ONNX Runtime's calibrators (minmax, entropy,
  percentile), independent of the calibration batch size;
- :mod:`.cache` — a JSON cache of those ranges keyed by model, windows, method and params.

No torch anywhere in this package; onnx / onnxruntime load when used.
"""

from mrm_edge.calibration.cache import CalibrationCache, CalibrationCacheWarning, calibration_key
from mrm_edge.calibration.ranges import METHODS, compute_ranges
from mrm_edge.calibration.sources import (
    held_out_windows,
    load_calibration_pool,
    select_calibration_windows,
)
from mrm_edge.calibration.windows import CalibrationPool, CalibrationSet, select_windows

__all__ = [
    "METHODS",
    "CalibrationCache",
    "CalibrationCacheWarning",
    "CalibrationPool",
    "CalibrationSet",
    "calibration_key",
    "compute_ranges",
    "held_out_windows",
    "load_calibration_pool",
    "select_calibration_windows",
    "select_windows",
]
