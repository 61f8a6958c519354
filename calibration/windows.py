"""Calibration windows drawn from real ECG, and the held-out windows of the accuracy gate.

INT8 quantization is only as good as the activations it is calibrated on. Synthetic or
random input would give ranges that real patients exceed (clipping) or never reach (wasted
resolution), so the calibration set is always cut from recordings:

* a PTB-XL tree (``ptbxl_database.csv``) or a CPSC 2018 tree (``REFERENCE.csv``) is loaded
  with the project's loaders, labels included, and **only the model's training folds** are
  used, so the folds that measure accuracy never influence the quantized model;
* any other folder is searched (recursively) for WFDB records (``.hea``) and CPSC ``.mat``
  files, which are resampled to the model's rate and cut into consecutive model-length
  windows; they carry no labels.

Selection is stratified: a random draw from an imbalanced set would leave rare classes (the
ones a monitor exists for) with few or no windows, and their activation extremes out of
the ranges. See :func:`select_windows`. No torch and no onnx here.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mrm_edge.card import ModelCard
from mrm_edge.data.dataset import LEADS, EcgDataset
from mrm_edge.data.errors import DataError, one_line

__all__ = [
    "DEFAULT_TEST_FOLDS",
    "DEFAULT_TRAIN_FOLDS",
    "CalibrationPool",
    "CalibrationSet",
    "detect_source",
    "held_out_windows",
    "load_calibration_pool",
    "select_calibration_windows",
    "select_windows",
]

#: Folds calibration may use when the card does not say (the PTB-XL recommendation).
DEFAULT_TRAIN_FOLDS: tuple[int, ...] = tuple(range(1, 9))
#: Folds the accuracy gate uses when the card does not say.
DEFAULT_TEST_FOLDS: tuple[int, ...] = (10,)

_PTBXL_MARKER = "ptbxl_database.csv"
_CPSC_MARKER = "REFERENCE.csv"
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
    """Windows to calibrate activation ranges on, with where they came from.

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

    @property
    def window_samples(self) -> int:
        return int(self.x.shape[2])

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """Consecutive ``[<= batch_size, 12, window]`` slices (the last one may be short)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        for start in range(0, len(self), batch_size):
            yield self.x[start : start + batch_size]

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


@dataclass
class CalibrationPool:
    """Every window a source offers for calibration, before selection.

    Kept separate from :class:`CalibrationSet` so that several selections (seeds, sizes)
    can be drawn without reading the recordings again.
    """

    x: np.ndarray  # float32 [n, 12, window]
    record_ids: list[str]  # one per window (a recording may give several windows)
    y: np.ndarray | None
    labels: list[str]
    sampling_rate: int
    composition: dict[str, Any] = field(default_factory=dict)  # source, folds, skipped

    def __len__(self) -> int:
        return int(self.x.shape[0])


# --------------------------------------------------------------------------- sources


def detect_source(source: str | Path) -> str:
    """``"ptbxl"``, ``"cpsc2018"`` or ``"folder"`` for a directory (a clear error otherwise)."""
    path = Path(source)
    if not path.exists():
        raise DataError(
            f"{path}: no such directory, expected a PTB-XL tree, a CPSC 2018 tree or a "
            "folder of WFDB (.hea) / .mat recordings"
        )
    if not path.is_dir():
        raise DataError(f"{path}: is a file, expected a directory of ECG recordings")
    if (path / _PTBXL_MARKER).is_file():
        return "ptbxl"
    if (path / _CPSC_MARKER).is_file():
        return "cpsc2018"
    return "folder"


def _card_folds(card: ModelCard, key: str, default: Sequence[int]) -> list[int]:
    folds = (card.data or {}).get("folds", {}) or {}
    value = folds.get(key, list(default))
    try:
        out = sorted({int(f) for f in value})
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"model card: field 'data.folds.{key}' is {value!r}, expected a list of fold numbers"
        ) from exc
    if not out:
        raise DataError(f"model card: field 'data.folds.{key}' is empty, expected fold numbers")
    return out


def _check_card(card: ModelCard) -> None:
    if list(card.leads) != list(LEADS):
        raise DataError(
            f"model card: field 'leads' is {card.leads}, expected the 12 standard leads "
            f"{list(LEADS)} (the order every loader produces)"
        )
    if card.sampling_rate <= 0 or card.window_samples <= 0:
        raise DataError(
            "model card: fields 'sampling_rate' and 'window_samples' must be positive, "
            f"got {card.sampling_rate} and {card.window_samples}"
        )


def _load_labelled(
    kind: str, root: Path, card: ModelCard, folds: Sequence[int] | None
) -> EcgDataset:
    """PTB-XL or CPSC 2018 at the card's rate and window, restricted to ``folds``."""
    from mrm_edge.data.dataset import load_dataset
    from mrm_edge.data.signal import fit_length, resample

    rate, window = int(card.sampling_rate), int(card.window_samples)
    if kind == "ptbxl":
        from mrm_edge.data.ptbxl import RECORD_SECONDS

        if RECORD_SECONDS * rate != window:  # checked before reading hundreds of records
            raise DataError(
                f"{root / _PTBXL_MARKER}: PTB-XL records are {RECORD_SECONDS * rate} samples at "
                f"{rate} Hz, but the model card's field 'window_samples' is {window}; expected "
                "equal lengths"
            )
        # PTB-XL ships 100 and 500 Hz only; other model rates are resampled from 500 Hz.
        load_rate = rate if rate in (100, 500) else 500
        ds = load_dataset("ptbxl", root, task=card.task, sampling_rate=load_rate, folds=folds)
        if load_rate != rate:
            x = fit_length(resample(ds.x, load_rate, rate), RECORD_SECONDS * rate)
            ds = replace(ds, x=x, sampling_rate=rate)
        return ds
    # CPSC 2018's only task is its nine classes, whatever the card's task; its recordings
    # differ in length, and the loader keeps the first `window` samples of each.
    ds = load_dataset("cpsc2018", root, task=None, sampling_rate=rate, seconds=window / rate)
    if folds is not None:
        ds = ds.select_folds(folds)
    return ds


def _has_folds(kind: str, root: Path) -> bool:
    # PTB-XL always has strat_fold; CPSC only with the benchmark's cpsc_database.csv.
    return kind == "ptbxl" or (root / "cpsc_database.csv").is_file()


def _read_folder(root: Path, card: ModelCard) -> CalibrationPool:
    """Every readable recording under ``root`` cut into consecutive model-length windows."""
    from mrm_edge.data.signal import resample
    from mrm_edge.records import read_recording

    rate, window = int(card.sampling_rate), int(card.window_samples)
    headers = sorted(root.rglob("*.hea"))
    # A .mat beside a .hea of the same name is that WFDB record's signal file (PhysioNet
    # Challenge 2020/21 layout), not a CPSC recording: read it once, through its header.
    mats = [m for m in sorted(root.rglob("*.mat")) if not m.with_suffix(".hea").is_file()]
    files = headers + mats
    if not files:
        what = "is empty" if not any(root.iterdir()) else "holds no WFDB (.hea) or .mat recordings"
        raise DataError(
            f"{root}: folder {what}, expected ECG recordings (searched sub-folders too)"
        )
    windows: list[np.ndarray] = []
    ids: list[str] = []
    skipped: dict[str, str] = {}
    for path in files:
        rid = path.relative_to(root).with_suffix("").as_posix()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # wfdb/pandas import chatter
                rec = read_recording(path)
        except (DataError, OSError) as exc:  # one bad file must not sink the folder
            skipped[rid] = one_line(exc) if isinstance(exc, OSError) else str(exc)
            continue
        signal = resample(rec.signal, rec.sampling_rate, rate).astype(np.float32)
        n_win = signal.shape[1] // window
        if n_win == 0:
            skipped[rid] = f"{rec.seconds:.1f} s long, shorter than one {window / rate:g} s window"
            continue
        kept = 0
        for k in range(n_win):
            w = signal[:, k * window : (k + 1) * window]
            # WFDB marks missing samples as NaN; such windows would poison min/max ranges.
            if np.isfinite(w).all():
                windows.append(w)
                ids.append(rid)
                kept += 1
        if kept == 0:
            skipped[rid] = "every window has missing (non-finite) samples"
    if not windows:
        first = next(iter(skipped.items()))
        raise DataError(
            f"{root}: no usable recordings: {len(files)} found, none gave a {window}-sample "
            f"window at {rate} Hz (first: {first[0]}: {first[1]})"
        )
    return CalibrationPool(
        x=np.stack(windows).astype(np.float32),
        record_ids=ids,
        y=None,
        labels=[],
        sampling_rate=rate,
        composition={
            "source": {"kind": "folder", "name": root.name},
            "folds": None,
            "folds_note": "plain folder: no folds, every recording is used",
            "n_recordings_found": len(files),
            "n_recordings_usable": len(set(ids)),
            "skipped": skipped,
        },
    )


def load_calibration_pool(source: str | Path, card: ModelCard) -> CalibrationPool:
    """All windows ``source`` offers for calibrating the model described by ``card``.

    For PTB-XL and CPSC 2018 trees with folds, only the card's training folds
    (``data.folds.train``, default 1-8) are read, so held-out folds stay held out.
    """
    _check_card(card)
    root = Path(source)
    kind = detect_source(root)
    if kind == "folder":
        return _read_folder(root, card)
    train_folds = _card_folds(card, "train", DEFAULT_TRAIN_FOLDS)
    has_folds = _has_folds(kind, root)
    ds = _load_labelled(kind, root, card, train_folds if has_folds else None)
    composition: dict[str, Any] = {
        "source": {"kind": kind, "name": root.name},
        "task": ds.task,
    }
    if has_folds:
        composition["folds"] = train_folds
        composition["folds_note"] = "training folds only: validation and test folds untouched"
    else:
        composition["folds"] = None
        composition["folds_note"] = f"{root.name} gives no folds: every record is used"
    if len(ds) == 0:
        raise DataError(
            f"{root}: no usable records in folds {train_folds} for task {ds.task!r}, "
            "expected at least one labelled record to calibrate on"
        )
    return CalibrationPool(
        x=ds.x,
        record_ids=list(ds.record_ids),
        y=ds.y,
        labels=list(ds.labels),
        sampling_rate=int(ds.sampling_rate),
        composition=composition,
    )


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


def select_windows(pool: CalibrationPool, n_windows: int = 512, seed: int = 0) -> CalibrationSet:
    """A seeded, stratified selection of at most ``n_windows`` windows from ``pool``.

    Labelled pools: labels take turns, rarest first (fewest windows in the pool); each turn
    takes a random not-yet-used window carrying that label, so every label is represented
    and rare ones are over-represented relative to their prevalence (their activations are
    the ones a min/max or histogram would otherwise miss). Unlabelled pools: recordings take
    turns the same way, so one long recording cannot dominate. Whatever is left fills the
    set in random order. Fewer windows available than requested → all are used, and the
    composition says so.
    """
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


def select_calibration_windows(
    source: str | Path, card: ModelCard, n_windows: int = 512, seed: int = 0
) -> CalibrationSet:
    """Calibration windows for ``card``'s model from a PTB-XL tree, a CPSC 2018 tree or a
    folder of recordings (see the module docstring and :func:`select_windows`)."""
    if isinstance(n_windows, bool) or not isinstance(n_windows, int) or n_windows < 1:
        raise ValueError(f"n_windows must be a positive integer, got {n_windows!r}")
    return select_windows(load_calibration_pool(source, card), n_windows=n_windows, seed=seed)


# --------------------------------------------------------------------------- held-out


def held_out_windows(
    source: str | Path, card: ModelCard, folds: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of the held-out folds, for the INT8 accuracy gate.

    ``folds`` defaults to the card's test folds (``data.folds.test``, default 10). ``y``
    columns follow ``card.labels`` (the model's output order). Only labelled trees with
    folds qualify: a plain folder has neither labels nor a held-out split.
    """
    _check_card(card)
    root = Path(source)
    kind = detect_source(root)
    if kind == "folder":
        raise DataError(
            f"{root}: a plain folder of recordings has no labels or folds, expected a PTB-XL "
            "or CPSC 2018 tree to take held-out windows from"
        )
    if not _has_folds(kind, root):
        raise DataError(
            f"{root}: no cpsc_database.csv, so CPSC 2018 recordings have no folds; "
            "expected a tree with folds to hold windows out"
        )
    wanted = (
        _card_folds(card, "test", DEFAULT_TEST_FOLDS)
        if folds is None
        else sorted({int(f) for f in folds})
    )
    train = set(_card_folds(card, "train", DEFAULT_TRAIN_FOLDS))
    if train & set(wanted):
        warnings.warn(
            f"held-out folds {sorted(train & set(wanted))} are training folds of the model: "
            "the accuracy gate will be optimistic",
            stacklevel=2,
        )
    ds = _load_labelled(kind, root, card, wanted)
    missing = [label for label in card.labels if label not in ds.labels]
    if missing:
        raise DataError(
            f"{root}: labels {missing} of the model card's field 'labels' are not in this "
            f"{kind} task {ds.task!r} (it has {ds.labels}); expected the model's labels"
        )
    if len(ds) == 0:
        raise DataError(f"{root}: no labelled records in fold(s) {wanted}, expected at least one")
    cols = [ds.labels.index(label) for label in card.labels]
    return ds.x, np.ascontiguousarray(ds.y[:, cols])
