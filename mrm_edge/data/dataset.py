"""The in-memory dataset every loader returns (numpy arrays plus provenance, no torch), the
constants every array here follows, and what the loaders share (their CSV tables, stacking
records). Imports no loader, so the runtime gets :data:`LEADS` cheaply."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mrm_edge.errors import one_line

from .errors import DataError

#: Lead order of every array in this package (the PTB-XL / CPSC 2018 order).
LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
#: Physical unit of every signal in this package.
UNITS = "mV"


@dataclass
class EcgDataset:
    """Fixed-length 12-lead records with multi-hot labels and their provenance.

    Attributes:
        x: float32 ``[n, 12, samples]`` in mV, leads in :data:`LEADS` order.
        y: float32 ``[n, n_labels]`` multi-hot targets, columns in ``labels`` order.
        labels: label names, i.e. the model's output order.
        record_ids: source identifiers (PTB-XL ``ecg_id``, CPSC recording name).
        folds: int ``[n]`` stratified fold 1..10, or 0 where the source gives none.
        sampling_rate: Hz.
        source: ``"ptbxl"``, ``"cpsc2018"``, ...
        task: label task the targets were built for (e.g. ``"superdiagnostic"``).
        dropped_unlabelled: records removed at load time because they carried no label
            for ``task``, per fold; kept so reported split sizes can be reconciled with
            the source's own counts.
    """

    x: np.ndarray
    y: np.ndarray
    labels: list[str]
    record_ids: list[str]
    folds: np.ndarray
    sampling_rate: int
    source: str
    task: str
    dropped_unlabelled: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Coerce once here so every consumer can rely on dtypes without re-checking.
        self.x = np.asarray(self.x, dtype=np.float32)
        self.y = np.asarray(self.y, dtype=np.float32)
        self.folds = np.asarray(self.folds, dtype=np.int64)
        self.labels = list(self.labels)
        self.record_ids = [str(r) for r in self.record_ids]
        n = self.x.shape[0] if self.x.ndim else 0
        if self.x.ndim != 3 or self.x.shape[1] != len(LEADS):
            raise DataError(
                f"EcgDataset({self.source}): x has shape {self.x.shape}, "
                f"expected [n, {len(LEADS)}, samples]"
            )
        if self.y.shape != (n, len(self.labels)):
            raise DataError(
                f"EcgDataset({self.source}): y has shape {self.y.shape}, "
                f"expected {(n, len(self.labels))} for {n} records and {len(self.labels)} labels"
            )
        if len(self.record_ids) != n or self.folds.shape != (n,):
            raise DataError(
                f"EcgDataset({self.source}): {len(self.record_ids)} record_ids and folds of "
                f"shape {self.folds.shape}, expected {n} of each"
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_samples(self) -> int:
        """Samples per lead (record length in samples)."""
        return int(self.x.shape[2])

    def select_folds(self, folds: Iterable[int]) -> EcgDataset:
        """Records whose fold is in ``folds``, keeping the dropped counts of those folds."""
        wanted = {int(f) for f in folds}
        idx = np.flatnonzero(np.isin(self.folds, sorted(wanted)))
        return replace(
            self,
            x=self.x[idx],
            y=self.y[idx],
            record_ids=[self.record_ids[i] for i in idx],
            folds=self.folds[idx],
            dropped_unlabelled={
                f: c for f, c in self.dropped_unlabelled.items() if int(f) in wanted
            },
        )

    def split(
        self,
        train_folds: Iterable[int] = range(1, 9),
        val_folds: Iterable[int] = (9,),
        test_folds: Iterable[int] = (10,),
    ) -> tuple[EcgDataset, EcgDataset, EcgDataset]:
        """Train / validation / test by stratified fold, the PTB-XL recommendation.

        Folds 9 and 10 of PTB-XL hold only human-validated labels, hence the defaults.
        Overlapping fold sets are rejected because they would leak test records.
        """
        groups = [set(map(int, f)) for f in (train_folds, val_folds, test_folds)]
        for i, a in enumerate(groups):
            for b in groups[i + 1 :]:
                if a & b:
                    raise DataError(
                        f"EcgDataset.split: fold(s) {sorted(a & b)} are in more than one split"
                    )
        train, val, test = (self.select_folds(g) for g in groups)
        return train, val, test

    def label_counts(self) -> dict[str, int]:
        """Positive records per label, in output order."""
        counts = self.y.sum(axis=0, dtype=np.float64) if len(self) else np.zeros(len(self.labels))
        return {label: round(c) for label, c in zip(self.labels, counts, strict=True)}

    def fold_counts(self) -> dict[int, int]:
        """Records per fold (``dropped_unlabelled`` holds those dropped at load)."""
        counts = Counter(int(f) for f in self.folds)
        return {f: counts[f] for f in sorted(counts)}

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable provenance summary, for logs and run manifests."""
        return {
            "source": self.source,
            "task": self.task,
            "n_records": len(self),
            "sampling_rate": int(self.sampling_rate),
            "n_samples": self.n_samples,
            "units": UNITS,
            "leads": list(LEADS),
            "labels": list(self.labels),
            "label_counts": self.label_counts(),
            "unlabelled_kept": int(np.count_nonzero(self.y.sum(axis=1) == 0)),
            "fold_counts": {str(f): c for f, c in self.fold_counts().items()},
            "dropped_unlabelled": {
                str(f): int(c) for f, c in sorted(self.dropped_unlabelled.items())
            },
        }


def stack_records(
    items: Sequence[Any],
    labels: Sequence[str],
    n_samples: int,
    read: Callable[[Any], tuple[np.ndarray, Iterable[str]]],
) -> tuple[np.ndarray, np.ndarray]:
    """Read every item into ``x`` float32 [n, 12, n_samples] and the multi-hot ``y`` [n,
    labels]: ``read(item)`` returns its signal (already at ``n_samples``) and label names."""
    n = len(items)
    x = np.empty((n, len(LEADS), n_samples), dtype=np.float32)
    y = np.zeros((n, len(labels)), dtype=np.float32)
    column = {label: j for j, label in enumerate(labels)}
    for i, item in enumerate(items):
        x[i], names = read(item)
        y[i, [column[name] for name in names]] = 1.0
    return x, y


def csv_int(value: str, where: str, field: str) -> int:
    """A CSV cell holding a whole number (``"3"`` or ``"3.0"``); DataError otherwise."""
    try:
        f = float(value)
    except ValueError as exc:
        raise DataError(f"{where}: field {field!r} is {value!r}, expected an integer") from exc
    if not f.is_integer():
        raise DataError(f"{where}: field {field!r} is {value!r}, expected an integer")
    return int(f)


def read_csv(path: Path, required: Sequence[str], source: str) -> list[dict[str, str]]:
    """Rows of a dataset's CSV table as dicts, after checking its header has the ``required``
    columns; ``source`` (``"PTB-XL"``) names the dataset when the file is missing."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, restval="")
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise DataError(
                    f"{path.name}: missing column(s) {missing}, found columns {header[:12]}"
                )
            return list(reader)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found (is this a {source} root directory?)") from exc
    except (csv.Error, UnicodeDecodeError) as exc:
        raise DataError(f"{path.name}: not a readable CSV file ({one_line(exc)})") from exc
