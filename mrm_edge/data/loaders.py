"""Loading a dataset by name (PTB-XL or CPSC 2018)."""

from __future__ import annotations

from os import PathLike
from typing import Any

from .cpsc2018 import CPSC_TASK, load_cpsc2018
from .dataset import EcgDataset
from .errors import DataError
from .ptbxl import load_ptbxl


def load_dataset(
    name: str,
    root: str | PathLike[str],
    task: str | None = None,
    sampling_rate: int = 100,
    **kwargs: Any,
) -> EcgDataset:
    """``"ptbxl"`` or ``"cpsc2018"``; ``task=None``: its own task (docs/model.md, ``mrm-edge
    train``). Extra keyword arguments go to the loader."""
    key = name.lower().replace("-", "").replace("_", "")
    if key == "ptbxl":
        return load_ptbxl(
            root,
            task="superdiagnostic" if task is None else task,
            sampling_rate=sampling_rate,
            **kwargs,
        )
    if key in ("cpsc2018", "cpsc", "icbeb"):
        if task not in (None, CPSC_TASK):
            raise DataError(
                f"load_dataset: task {task!r} is not available for cpsc2018, "
                f"expected {CPSC_TASK!r} (its nine challenge classes)"
            )
        return load_cpsc2018(root, sampling_rate=sampling_rate, **kwargs)
    raise DataError(f"load_dataset: unknown dataset {name!r}, expected 'ptbxl' or 'cpsc2018'")
