"""Reading one ECG recording from disk, whatever its format: a WFDB record
(PTB-XL .hea/.dat, any sampling rate) or a CPSC 2018 .mat file.

Returns the signal as [12, samples] float32 in mV, in the model's lead order.
No torch: the runtime reads recordings with this too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrm_edge.data.dataset import LEADS
from mrm_edge.data.errors import DataError, first_line

# Lead names are matched case-insensitively: "AVR", "avr" and "aVR" are one lead.
_CANONICAL = {lead.upper(): lead for lead in LEADS}


@dataclass
class Recording:
    name: str
    signal: np.ndarray  # [12, samples] float32, mV, LEADS order
    sampling_rate: int

    @property
    def seconds(self) -> float:
        return self.signal.shape[1] / self.sampling_rate


def _canonical(lead: str) -> str:
    return _CANONICAL.get(lead.strip().upper(), lead.strip())


def read_recording(path: str | Path) -> Recording:
    """A recording from ``path``: ``X.hea``, ``X.dat``, the record stem ``X``, or ``X.mat``."""
    path = Path(path)
    if path.suffix == ".mat":
        from mrm_edge.data.cpsc2018 import read_cpsc_mat

        signal, fs = read_cpsc_mat(path)
        return Recording(path.stem, np.asarray(signal, np.float32), int(fs))
    stem = path.with_suffix("") if path.suffix in (".hea", ".dat") else path
    header = stem.with_suffix(".hea")
    if not header.is_file():
        raise DataError(f"{header}: no such WFDB header (give a .hea, its record stem, or a .mat)")
    import wfdb

    try:
        rec = wfdb.rdrecord(str(stem), physical=True)
    except Exception as e:  # wfdb raises many types for malformed files
        msg = first_line(e, with_type=False)
        raise DataError(f"{header}: unreadable WFDB record ({msg})") from e
    names = [_canonical(n) for n in (rec.sig_name or [])]
    missing = [lead for lead in LEADS if lead not in names]
    if missing:
        raise DataError(
            f"{header}: field 'sig_name' lacks lead(s) {', '.join(missing)}; "
            f"expected the 12 standard leads, found {rec.sig_name}"
        )
    units = [u.strip() for u in (rec.units or [])]
    scale = np.ones(len(names))
    for i, u in enumerate(units):
        if u.lower() in ("uv", "µv", "microvolt"):
            scale[i] = 1e-3
        elif u.lower() not in ("mv", "millivolt"):
            raise DataError(
                f"{header}: field 'units' of lead {names[i]} is {u!r}, expected mV or uV"
            )
    order = [names.index(lead) for lead in LEADS]
    signal = (rec.p_signal[:, order] * scale[order]).T.astype(np.float32)
    fs = float(rec.fs)
    if fs <= 0 or fs != round(fs):
        raise DataError(f"{header}: field 'fs' is {rec.fs}, expected a positive whole number of Hz")
    return Recording(stem.name, signal, int(fs))


__all__ = ["Recording", "read_recording"]
