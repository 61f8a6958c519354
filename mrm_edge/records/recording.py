"""The one record every reader returns (12 standard leads in the model's order, mV, a rate),
the checks every format shares on the way there (lead names, units, rate, size), and the
window cutting offline prediction and calibration use. No torch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mrm_edge.data.errors import DataError
from mrm_edge.data.leads import canonical_lead, lead_order
from mrm_edge.data.signal import MAX_RATE, MIN_RATE, resample

#: The most samples per lead a file may declare: 4.6 h at 500 Hz, ~400 MB as float32 for 12
#: leads. Checked before anything is allocated, so a header claiming billions is one line.
MAX_SAMPLES = 2**23
#: A stored rate within this fraction of a whole number of Hz is that number (SCP-ECG stores
#: the sample interval in µs: 1667 µs is 599.88 Hz, a 600 Hz recorder).
RATE_TOLERANCE = 1e-3

# Millivolts per stored unit, by the spellings vendors use (case-insensitive). Volts are
# refused: no ECG recorder stores them, and a file saying so is more likely mislabelled
# (a 1000-fold error would pass every later check).
_MV_PER_UNIT = {
    "mv": 1.0, "millivolt": 1.0, "millivolts": 1.0,
    "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "microvolt": 1e-3, "microvolts": 1e-3,
}  # fmt: skip
# Einthoven's and Goldberger's relations: the four limb leads a cart stores as I and II.
_DERIVED = ("III", "aVR", "aVL", "aVF")


@dataclass
class Recording:
    name: str
    signal: np.ndarray  # [12, samples] float32, mV, LEADS order
    sampling_rate: int
    path: str = ""
    notes: tuple[str, ...] = field(default=())
    """What was done to fit the model's lead layout (reordered, derived, extra leads left out)."""
    units: tuple[str, ...] = field(default=())
    """The unit each of the 12 leads was stored in (the signal is in mV)."""
    format: str = ""
    """The registered format it was read as (``wfdb``, ``dicom``, ...)."""
    start_time: str | None = None
    """When the acquisition started, as the file states it (ISO 8601 where it says so)."""
    patient_id: str | None = None
    record_id: str | None = None

    @property
    def seconds(self) -> float:
        return self.signal.shape[1] / self.sampling_rate


def mv_per_unit(where: object, what: str, unit: str) -> float:
    """The factor that turns ``unit`` into mV; a :class:`DataError` naming ``what`` (e.g.
    "field 'units' of lead V1") for a unit that is not a voltage."""
    factor = _MV_PER_UNIT.get(unit.strip().lower())
    if factor is None:
        raise DataError(f"{where}: {what} is {unit!r}, expected mV or uV")
    return factor


def checked_rate(where: object, what: str, rate: float) -> int:
    """``rate`` (Hz) as a whole number of Hz in MIN_RATE..MAX_RATE, or a :class:`DataError`."""
    whole = round(rate) if math.isfinite(rate) else 0
    if not (MIN_RATE <= whole <= MAX_RATE) or abs(rate - whole) > RATE_TOLERANCE * whole:
        raise DataError(
            f"{where}: {what} is {rate:g} Hz, expected a whole number of Hz in "
            f"{MIN_RATE}..{MAX_RATE}"
        )
    return whole


def checked_length(where: object, what: str, samples: int) -> int:
    """``samples`` if 1..MAX_SAMPLES, else a :class:`DataError` (before any allocation)."""
    if not 0 < samples <= MAX_SAMPLES:
        raise DataError(f"{where}: {what} is {samples}, expected 1..{MAX_SAMPLES} samples per lead")
    return samples


def derive_limb_leads(names: list[str], signal: np.ndarray) -> tuple[list[str], np.ndarray]:
    """``names``/``signal`` with III, aVR, aVL and aVF appended from I and II when all four
    are missing and I and II are stored (GE MUSE and most carts store 8 leads); unchanged
    otherwise. III = II − I, aVR = −(I + II)/2, aVL = I − II/2, aVF = II − I/2."""
    canonical = [canonical_lead(n) for n in names]
    if any(lead in canonical for lead in _DERIVED) or not {"I", "II"} <= set(canonical):
        return names, signal
    lead_i = signal[canonical.index("I")].astype(np.float64)
    lead_ii = signal[canonical.index("II")].astype(np.float64)
    iii, avr = lead_ii - lead_i, -(lead_i + lead_ii) / 2
    avl, avf = lead_i - lead_ii / 2, lead_ii - lead_i / 2
    return [*names, *_DERIVED], np.vstack([signal, np.stack([iii, avr, avl, avf])])


def assemble(
    where: object,
    names: Sequence[str],
    signal: np.ndarray,
    units: Sequence[str],
    rate: int,
    *,
    lead_field: str = "lead names",
    unit_field: str = "units",
) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """A reader's stored leads (``signal`` [stored, samples] in ``units``, one per stored lead)
    as float32 [12, samples] mV in :data:`LEADS` order, with the notes on what was done and
    the stored unit of each of the 12 leads. Lead names are matched by name across vendors'
    spellings, the four derivable limb leads derived when only I and II are stored; a
    missing or doubled lead or an unknown unit is a :class:`DataError` naming ``where``."""
    names = [str(n) for n in names]
    units = list(units)
    if len(units) != len(names):
        raise DataError(f"{where}: {len(units)} unit(s) for {len(names)} lead(s)")
    scale = np.array(
        [mv_per_unit(where, f"field {unit_field!r} of lead {n}", u) for n, u in zip(names, units)]  # noqa: B905
    )
    mv = np.asarray(signal, dtype=np.float64) * scale[:, None]
    stored = len(names)
    names, mv = derive_limb_leads(names, mv)
    order, notes = lead_order(where, names, lead_field)
    if len(names) > stored:  # the derived leads carry lead I's unit
        notes = (*notes, "III, aVR, aVL and aVF derived from I and II (Einthoven, Goldberger)")
        units += [units[[canonical_lead(n) for n in names].index("I")]] * (len(names) - stored)
    return mv[order].astype(np.float32), notes, tuple(units[i] for i in order)


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
