"""The one reader of an ECG recording (WFDB or CPSC 2018 .mat) as [12, samples] float32 mV in
the model's lead order, finding recordings and cutting windows; docs/model.md, "Reading
recordings". No torch."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrm_edge.data.dataset import LEADS
from mrm_edge.data.errors import DataError
from mrm_edge.data.leads import lead_order
from mrm_edge.data.signal import resample
from mrm_edge.data.wfdb_header import check_wfdb_header
from mrm_edge.errors import first_line


@dataclass
class Recording:
    name: str
    signal: np.ndarray  # [12, samples] float32, mV, LEADS order
    sampling_rate: int
    path: str = ""
    notes: tuple[str, ...] = field(default=())
    """What was done to fit the model's lead layout (reordered, extra leads left out)."""
    units: tuple[str, ...] = field(default=())
    """The unit each of the 12 leads was stored in (WFDB records; the signal is in mV)."""

    @property
    def seconds(self) -> float:
        return self.signal.shape[1] / self.sampling_rate


def read_recording(path: str | Path) -> Recording:
    """A recording from ``path``: ``X.hea``, ``X.dat``, the record stem ``X``, or ``X.mat``."""
    path = Path(path)
    if path.suffix == ".mat" and not path.with_suffix(".hea").is_file():
        from mrm_edge.data.cpsc2018 import read_cpsc_mat

        # NaN/Inf are left to the window quality check, as for WFDB records (docstring).
        signal, fs = read_cpsc_mat(path, allow_nonfinite=True)
        return Recording(path.stem, np.asarray(signal, np.float32), int(fs), str(path))
    # A .mat beside a .hea of its name is that WFDB record's signal file (PhysioNet 2020).
    stem = path.with_suffix("") if path.suffix in (".hea", ".dat", ".mat") else path
    header = Path(f"{stem}.hea")  # not with_suffix: a record name may contain dots
    if not header.is_file():
        raise DataError(f"{header}: no such WFDB header (give a .hea, its record stem, or a .mat)")
    info = check_wfdb_header(header)
    with warnings.catch_warnings():  # wfdb's import-time pandas deprecations: not ours
        warnings.filterwarnings("ignore", module=r"wfdb(\.|$)")
        import wfdb

    try:
        rec = wfdb.rdrecord(str(stem), physical=True)
    except Exception as e:  # wfdb raises many types for malformed files
        msg = first_line(e, with_type=False)
        raise DataError(f"{header}: unreadable WFDB record ({msg})") from e
    if rec.p_signal is None or rec.p_signal.ndim != 2 or rec.p_signal.shape[1] != info.n_sig:
        raise DataError(f"{header}: wfdb returned no {info.n_sig}-signal array for this record")
    if info.sig_len is not None and rec.p_signal.shape[0] != info.sig_len:
        raise DataError(
            f"{header}: field 'sig_len' is {info.sig_len}, the signal file holds "
            f"{rec.p_signal.shape[0]} samples"
        )
    order, notes = lead_order(header, list(rec.sig_name or []))
    units = [(u or "").strip() for u in (rec.units or [""] * len(rec.sig_name or []))]
    stored = tuple(units[i] if i < len(units) else "" for i in order)
    scale = np.ones(len(order))
    for k, u in enumerate(stored):
        if u.lower() in ("uv", "µv", "microvolt"):
            scale[k] = 1e-3
        elif u.lower() not in ("mv", "millivolt"):
            raise DataError(
                f"{header}: field 'units' of lead {LEADS[k]} is {u!r}, expected mV or uV"
            )
    signal = (rec.p_signal[:, order] * scale).T.astype(np.float32)
    fs = float(rec.fs)
    if fs <= 0 or fs != round(fs):
        raise DataError(f"{header}: field 'fs' is {rec.fs}, expected a positive whole number of Hz")
    return Recording(stem.name, signal, int(fs), str(header), notes, stored)


def find_recordings(folder: Path) -> list[Path]:
    """Every recording under ``folder`` (sub-folders too), sorted by path: the WFDB headers
    (``.hea``) and the ``.mat`` files that are not a header's signal file. A ``.mat`` beside
    a ``.hea`` of its name is that WFDB record's signal (the PhysioNet Challenge 2020/21
    layout), read once through its header, not as a CPSC recording. Empty when there are
    none: each caller says what it expected."""
    headers = list(folder.rglob("*.hea"))
    stems = {p.with_suffix("") for p in headers}
    mats = [p for p in folder.rglob("*.mat") if p.with_suffix("") not in stems]
    return sorted(headers + mats, key=str)


def cut_windows(rec: Recording, rate: int, window: int) -> np.ndarray:
    """``rec`` at ``rate`` Hz cut into consecutive, non-overlapping windows of ``window``
    samples: float32 ``[n, 12, window]`` (``n`` may be 0; a shorter tail is left out, never
    padded).

    Offline ``predict`` and calibration folders cut recordings so; the streaming monitor's
    windower (``runtime/stream/windower.py``) slides by a hop over a live buffer instead.
    """
    x = rec.signal
    if rec.sampling_rate != rate:
        x = resample(x, rec.sampling_rate, rate)
    n = x.shape[1] // window
    if n == 0:
        wins = np.zeros((0, x.shape[0], window))
    else:
        wins = np.stack([x[:, i * window : (i + 1) * window] for i in range(n)])
    return wins.astype(np.float32)
