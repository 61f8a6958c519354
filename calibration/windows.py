"""Calibration windows drawn from real ECG (:class:`CalibrationSet`: every window a source
offers, or a selection of them) and the stratified selection (:func:`select_windows`). Why
real ECG and why stratified: docs/export.md, "Calibration windows"; reading the sources:
:mod:`.sources`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from mrm_edge.data.dataset import LEADS
from mrm_edge.data.errors import DataError

_LABELLED_SELECTION = (
    "stratified round-robin over labels (rarest first), one unused window carrying the "
    "label per turn, then the remaining windows in random order"
)
_UNLABELLED_SELECTION = (
    "round-robin over recordings, one unused window of the recording per turn, "
    "then the remaining windows in random order"
)


@dataclass
class CalibrationSet:
    """Windows to calibrate activation ranges on, with where they came from: a source's
    whole pool (read once, so several selections can be drawn from it) or a selection.

    Attributes:
        x: float32 ``[n, 12, window]`` raw mV at the model's sampling rate (the exported
            graph standardises internally, so calibration feeds what a runtime feeds).
        record_ids: the recording each window was cut from (PTB-XL ``ecg_id``, CPSC name,
            or a path relative to the folder).
        y: float32 ``[n, n_labels]`` multi-hot, or ``None`` for unlabelled recordings.
        labels: column names of ``y`` (the source's labels; empty when unlabelled).
        composition: JSON-serialisable provenance: source kind and folder name, folds used,
            records and windows, windows per label, seed and selection method.
        sampling_rate: Hz of ``x``.
    """

    x: np.ndarray
    record_ids: list[str]
    y: np.ndarray | None
    labels: list[str]
    composition: dict[str, Any]
    sampling_rate: int

    def __post_init__(self) -> None:
        # Contiguous float32 once, here: ORT, TensorRT and the fingerprint all read the bytes.
        self.x = np.ascontiguousarray(self.x, dtype=np.float32)
        if self.x.ndim != 3 or self.x.shape[1] != len(LEADS) or self.x.shape[0] == 0:
            raise DataError(
                f"CalibrationSet: field 'x' has shape {self.x.shape}, "
                f"expected [n > 0, {len(LEADS)}, window]"
            )
        n = self.x.shape[0]
        self.record_ids = [str(r) for r in self.record_ids]
        if len(self.record_ids) != n:
            raise DataError(
                f"CalibrationSet: field 'record_ids' has {len(self.record_ids)} entries, "
                f"expected {n} (one per window)"
            )
        if self.y is not None:
            self.y = np.asarray(self.y, dtype=np.float32)
            if self.y.shape != (n, len(self.labels)):
                raise DataError(
                    f"CalibrationSet: field 'y' has shape {self.y.shape}, "
                    f"expected {(n, len(self.labels))}"
                )
        if not np.isfinite(self.x).all():
            raise DataError("CalibrationSet: field 'x' has non-finite samples, expected finite mV")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def fingerprint(self) -> str:
        """SHA-256 over the window bytes and the essentials of how they were chosen.

        Used as the calibration-cache key: any change to the windows (other records, another
        seed, another rate) gives a new key, while a moved or renamed data folder does not.
        """
        h = hashlib.sha256()
        essentials = {
            "shape": list(self.x.shape),
            "dtype": str(self.x.dtype),
            "sampling_rate": int(self.sampling_rate),
            "record_ids": self.record_ids,
            "labels": self.labels,
            "kind": self.composition.get("source", {}).get("kind"),
            "folds": self.composition.get("folds"),
            "seed": self.composition.get("seed"),
            "selection": self.composition.get("selection"),
        }
        h.update(json.dumps(essentials, sort_keys=True).encode())
        h.update(self.x.tobytes())
        if self.y is not None:
            h.update(self.y.tobytes())
        return h.hexdigest()


# --------------------------------------------------------------------------- selection


def _round_robin(
    turns: list[list[int]], used: np.ndarray, n_windows: int, chosen: list[int]
) -> None:
    """Take one unused window per turn list, cycling, until ``n_windows`` or all are spent.

    ``turns`` hold candidate indices already shuffled; an exhausted list leaves the cycle.
    """
    cursors = [0] * len(turns)
    active = list(range(len(turns)))
    while active and len(chosen) < n_windows:
        still = []
        for t in active:
            cand = turns[t]
            while cursors[t] < len(cand) and used[cand[cursors[t]]]:
                cursors[t] += 1
            if cursors[t] < len(cand):
                i = cand[cursors[t]]
                used[i] = True
                chosen.append(i)
                cursors[t] += 1
                if len(chosen) == n_windows:
                    return
                still.append(t)
        active = still


def select_windows(pool: CalibrationSet, n_windows: int = 512, seed: int = 0) -> CalibrationSet:
    """A seeded, stratified selection of at most ``n_windows`` windows from ``pool``: labels
    take turns, rarest first (recordings, when unlabelled), each turn a random unused window
    carrying it; whatever is left fills the set in random order (why: docs/export.md,
    "Calibration windows"). Fewer available than requested: all are used, as the composition
    says."""
    if isinstance(n_windows, bool) or not isinstance(n_windows, int) or n_windows < 1:
        raise ValueError(f"n_windows must be a positive integer, got {n_windows!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    rng = np.random.default_rng(seed)
    n = len(pool)
    used = np.zeros(n, dtype=bool)
    chosen: list[int] = []
    if pool.y is not None and pool.labels:
        counts = pool.y.sum(axis=0)
        order = sorted(range(len(pool.labels)), key=lambda j: (counts[j], pool.labels[j]))
        turns = [rng.permutation(np.flatnonzero(pool.y[:, j] > 0)).tolist() for j in order]
        selection = _LABELLED_SELECTION
    else:
        records = list(dict.fromkeys(pool.record_ids))  # first-seen order, then shuffled
        by_record: dict[str, list[int]] = {r: [] for r in records}
        for i, r in enumerate(pool.record_ids):
            by_record[r].append(i)
        turns = [
            rng.permutation(by_record[records[k]]).tolist() for k in rng.permutation(len(records))
        ]
        selection = _UNLABELLED_SELECTION
    _round_robin(turns, used, n_windows, chosen)
    if len(chosen) < n_windows:
        rest = rng.permutation(np.flatnonzero(~used)).tolist()
        chosen.extend(rest[: n_windows - len(chosen)])
    idx = np.asarray(chosen, dtype=np.int64)

    x = pool.x[idx]
    y = None if pool.y is None else pool.y[idx]
    record_ids = [pool.record_ids[i] for i in idx]
    composition = dict(pool.composition)
    composition.update(
        {
            "sampling_rate": int(pool.sampling_rate),
            "window_samples": int(pool.x.shape[2]),
            "n_windows_requested": int(n_windows),
            "n_windows_available": n,
            "n_windows": len(idx),
            "n_records": len(set(record_ids)),
            "all_used": len(idx) == n,
            "seed": int(seed),
            "selection": selection,
        }
    )
    if len(idx) < n_windows:
        composition["note"] = (
            f"only {n} windows available, fewer than the {n_windows} requested: all are used"
        )
    if y is not None:
        composition["labels"] = list(pool.labels)
        composition["label_windows"] = {
            label: int(c) for label, c in zip(pool.labels, y.sum(axis=0), strict=True)
        }
        composition["label_windows_available"] = {
            label: int(c) for label, c in zip(pool.labels, pool.y.sum(axis=0), strict=True)
        }
    return CalibrationSet(
        x=x,
        record_ids=record_ids,
        y=y,
        labels=list(pool.labels) if y is not None else [],
        composition=composition,
        sampling_rate=int(pool.sampling_rate),
    )
