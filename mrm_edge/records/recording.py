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

#: The most samples per lead a file may declare: 2.3 h at 500 Hz, 200 MB as float32 for 12
#: leads. Checked before anything is allocated, so a header claiming billions is one line.
MAX_SAMPLES = 2**22
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


def lead_plan(
    where: object, names: Sequence[str], lead_field: str = "lead names"
) -> tuple[list[int | None], tuple[str, ...]]:
    """Where each of the 12 leads is in ``names`` (None: derived) and the notes on it; the
    lead set's :class:`DataError` before a reader decodes any sample. When I and II are
    stored and none of III, aVR, aVL, aVF (GE MUSE and most carts store 8 leads), those four
    are derived (see :func:`assemble`)."""
    canonical = {canonical_lead(str(n)) for n in names}
    derive = not canonical & set(_DERIVED) and {"I", "II"} <= canonical
    derivable = _DERIVED if derive else ()
    order, notes = lead_order(where, [str(n) for n in names], lead_field, derivable)
    if derive:
        notes = (*notes, "III, aVR, aVL and aVF derived from I and II (Einthoven, Goldberger)")
    return order, notes


def assemble(
    where: object,
    names: Sequence[str],
    signal: np.ndarray,
    units: Sequence[str],
    *,
    lead_field: str = "lead names",
    unit_field: str = "units",
) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """A reader's stored leads (``signal`` [stored, samples] in ``units``, one per stored lead)
    as float32 [12, samples] mV in :data:`LEADS` order, with the notes on what was done and
    the stored unit of each of the 12 leads. Leads are matched by name across vendors'
    spellings (:func:`lead_plan`); derived leads are III = II − I, aVR = −(I + II)/2,
    aVL = I − II/2, aVF = II − I/2. A missing or doubled lead, or an unknown unit of a lead
    used, is a :class:`DataError` naming ``where``."""
    if len(units) != len(names):
        raise DataError(f"{where}: {len(units)} unit(s) for {len(names)} lead(s)")
    order, notes = lead_plan(where, names, lead_field)
    out = np.empty((len(order), signal.shape[1]), dtype=np.float32)
    stored_units = []
    for k, i in enumerate(order):
        if i is not None:
            what = f"field {unit_field!r} of lead {names[i]}"
            out[k] = signal[i] * np.float32(mv_per_unit(where, what, units[i]))
        stored_units.append(units[i if i is not None else order[0]])  # derived: lead I's
    if order[2] is None:  # rows 0, 1: I and II; 2-5: III, aVR, aVL, aVF (LEADS order)
        lead_i, lead_ii = out[0], out[1]
        out[2], out[3] = lead_ii - lead_i, -(lead_i + lead_ii) / 2
        out[4], out[5] = lead_i - lead_ii / 2, lead_ii - lead_i / 2
    return out, notes, tuple(stored_units)


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
