"""Data layer: dataset loaders, label tasks, normalisation and synthetic ECG.

Torch-free on purpose: the edge runtime imports this package, so it depends only on
numpy, scipy and (lazily, for PTB-XL records) wfdb. The names below load their module on
first use (PEP 562), so ``from mrm_edge.data.dataset import LEADS`` (what the runtime
needs) does not pull in every dataset loader.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the module that defines it
_HOME = {
    "CPSC_CODES": "cpsc2018",
    "CPSC_LABELS": "cpsc2018",
    "CPSC_TASK": "cpsc2018",
    "load_cpsc2018": "cpsc2018",
    "read_cpsc_mat": "cpsc2018",
    "LEADS": "dataset",
    "UNITS": "dataset",
    "EcgDataset": "dataset",
    "load_dataset": "loaders",
    "DataError": "errors",
    "LeadStandardizer": "normalization",
    "TASKS": "ptbxl",
    "aggregate_labels": "ptbxl",
    "load_ptbxl": "ptbxl",
    "ptbxl_fold_counts": "ptbxl",
    "read_ptbxl_record": "ptbxl",
    "fit_length": "signal",
    "resample": "signal",
    "RHYTHMS": "synthetic",
    "SyntheticPatient": "synthetic",
    "SyntheticStream": "synthetic",
    "make_patients": "synthetic",
    "synthesize": "synthetic",
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{home}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])
