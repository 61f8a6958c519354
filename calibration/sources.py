"""Where calibration and held-out windows come from: PTB-XL or CPSC 2018 trees (labels; the
calibration pool reads the training folds only, the accuracy gate the card's test folds) and
plain folders of recordings (cut into model-length windows)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from mrm_edge.calibration.windows import CalibrationSet, select_windows

from mrm_edge.card import ModelCard
from mrm_edge.data.dataset import LEADS, EcgDataset
from mrm_edge.data.errors import DataError
from mrm_edge.errors import one_line

#: Folds calibration may use when the card does not say (the PTB-XL recommendation).
DEFAULT_TRAIN_FOLDS: tuple[int, ...] = tuple(range(1, 9))
#: Folds the accuracy gate uses when the card does not say.
DEFAULT_TEST_FOLDS: tuple[int, ...] = (10,)

_PTBXL_MARKER = "ptbxl_database.csv"
_CPSC_MARKER = "REFERENCE.csv"


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


def _load_labelled(
    kind: str, root: Path, card: ModelCard, folds: Sequence[int] | None
) -> EcgDataset:
    """PTB-XL or CPSC 2018 at the card's rate and window, restricted to ``folds``."""
    from mrm_edge.data.loaders import load_dataset
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


def _read_folder(root: Path, card: ModelCard) -> CalibrationSet:
    """Every readable recording under ``root`` cut into consecutive model-length windows."""
    from mrm_edge.records import cut_windows, find_recordings, read_recording

    rate, window = int(card.sampling_rate), int(card.window_samples)
    # Headers first, then the .mat recordings, each in path order: the order this pool was
    # always read in, so a seed keeps selecting the same windows from a given folder.
    files = sorted(find_recordings(root), key=lambda p: (p.suffix == ".mat", p))
    if not files:
        known = "holds no ECG recordings of a known format"
        what = "is empty" if not any(root.iterdir()) else known
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
        cut = cut_windows(rec, rate, window)
        if len(cut) == 0:
            skipped[rid] = f"{rec.seconds:.1f} s long, shorter than one {window / rate:g} s window"
            continue
        kept = 0
        for w in cut:
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
    return CalibrationSet(
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


def load_calibration_pool(source: str | Path, card: ModelCard) -> CalibrationSet:
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
    return CalibrationSet(
        x=ds.x,
        record_ids=list(ds.record_ids),
        y=ds.y,
        labels=list(ds.labels),
        sampling_rate=int(ds.sampling_rate),
        composition=composition,
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


def held_out_windows(source: str | Path, card: ModelCard) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of the card's test folds (``data.folds.test``, default 10), for the
    accuracy gates. ``y`` columns follow ``card.labels`` (the model's output order). Only
    labelled trees with folds qualify: a plain folder has neither labels nor a held-out split.
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
    wanted = _card_folds(card, "test", DEFAULT_TEST_FOLDS)
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
