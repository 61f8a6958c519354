"""Per-lead standardisation fitted on training data and shipped with the model.

The statistics are part of the model: the edge runtime must apply exactly the mean/std
the network was trained with, so they serialise to plain JSON (with lead names, so a
file fitted on another lead order is refused instead of silently misapplied).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .dataset import LEADS, UNITS
from .errors import DataError

# Records per chunk when fitting: bounds the float64 temporaries on the full PTB-XL.
_CHUNK = 512


@dataclass
class LeadStandardizer:
    """``(x - mean[lead]) / std[lead]`` for signals shaped ``[..., 12, t]``."""

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float64)
        self.std = np.asarray(self.std, dtype=np.float64)
        for name, v in (("mean", self.mean), ("std", self.std)):
            if v.shape != (len(LEADS),) or not np.isfinite(v).all():
                raise DataError(
                    f"LeadStandardizer: field {name!r} has shape {v.shape}, "
                    f"expected {len(LEADS)} finite values"
                )
        if (self.std <= 0).any():
            raise DataError("LeadStandardizer: field 'std' has values <= 0, expected > 0")

    @classmethod
    def fit(cls, x: np.ndarray) -> LeadStandardizer:
        """Per-lead mean and std over all records and time points of ``x [n, 12, t]``.

        Two passes in float64 over chunks of records: float32 accumulation over ~10^8
        samples loses digits, and a one-pass sum of squares cancels catastrophically.
        A floor of 1e-6 keeps a flat (disconnected) lead from dividing by zero.
        """
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[1] != len(LEADS) or x.shape[0] * x.shape[2] == 0:
            raise DataError(
                f"LeadStandardizer.fit: x has shape {x.shape}, expected non-empty "
                f"[n, {len(LEADS)}, t]"
            )
        count = x.shape[0] * x.shape[2]
        total = np.zeros(len(LEADS))
        for s in range(0, x.shape[0], _CHUNK):
            total += x[s : s + _CHUNK].sum(axis=(0, 2), dtype=np.float64)
        mean = total / count
        if not np.isfinite(mean).all():  # any NaN/inf sample poisons its lead's mean
            raise DataError("LeadStandardizer.fit: x has non-finite values, expected finite mV")
        sq = np.zeros(len(LEADS))
        for s in range(0, x.shape[0], _CHUNK):
            d = x[s : s + _CHUNK].astype(np.float64) - mean[:, None]
            sq += np.einsum("nlt,nlt->l", d, d)
        if not np.isfinite(sq).all():
            raise DataError("LeadStandardizer.fit: x overflows float64, expected mV values")
        std = np.maximum(np.sqrt(sq / count), 1e-6)
        return cls(mean=mean, std=std)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Standardised float32 copy of ``x [..., 12, t]``."""
        x = np.asarray(x)
        if x.ndim < 2 or x.shape[-2] != len(LEADS):
            raise DataError(
                f"LeadStandardizer.apply: x has shape {x.shape}, expected [..., {len(LEADS)}, t]"
            )
        mean = self.mean.astype(np.float32)[:, None]
        scale = (1.0 / self.std).astype(np.float32)[:, None]
        return ((x.astype(np.float32, copy=False) - mean) * scale).astype(np.float32, copy=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (plain lists of floats, lead names and unit)."""
        return {
            "leads": list(LEADS),
            "units": UNITS,
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LeadStandardizer:
        """Inverse of :meth:`to_dict`, refusing anything that does not match our leads."""
        if not isinstance(d, Mapping):
            raise DataError(f"LeadStandardizer: expected a mapping, found {type(d).__name__}")
        leads = d.get("leads", list(LEADS))
        if list(leads) != list(LEADS):
            raise DataError(f"LeadStandardizer: field 'leads' is {leads}, expected {list(LEADS)}")
        if d.get("units", UNITS) != UNITS:
            raise DataError(
                f"LeadStandardizer: field 'units' is {d['units']!r}, expected {UNITS!r}"
            )
        values = {}
        for key in ("mean", "std"):
            if key not in d:
                raise DataError(f"LeadStandardizer: field {key!r} is missing")
            try:
                values[key] = np.asarray(d[key], dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise DataError(
                    f"LeadStandardizer: field {key!r} is not a list of numbers"
                ) from exc
        return cls(mean=values["mean"], std=values["std"])
