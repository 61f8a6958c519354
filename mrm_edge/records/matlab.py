"""CPSC 2018 challenge recordings: MATLAB files with a struct ``ECG`` (12 × N mV, 500 Hz by
the challenge's documentation; the files carry no rate)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrm_edge.data.cpsc2018 import read_cpsc_mat
from mrm_edge.data.dataset import LEADS
from mrm_edge.records.recording import Recording


def read(path: Path) -> Recording:
    # NaN/Inf are left to the window quality check, as for every format.
    signal, fs = read_cpsc_mat(path, allow_nonfinite=True)
    return Recording(
        path.stem, np.asarray(signal, np.float32), fs, str(path), (), ("mV",) * len(LEADS),
        "cpsc-mat", None, None, path.stem,
    )  # fmt: skip
