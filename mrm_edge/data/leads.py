"""Finding the 12 standard leads in a record's signal names, by name, never by position:
vendors' spellings normalised, reordered to :data:`LEADS`, extra channels left out (both
returned as notes), a missing or doubled standard lead a :class:`DataError` naming them."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .dataset import LEADS
from .errors import DataError

# Lead names are matched case-insensitively: "AVR", "avr" and "aVR" are one lead.
_CANONICAL = {lead.upper(): lead for lead in LEADS}
# What vendors put around a lead's name: HL7 aECG "MDC_ECG_LEAD_I", DICOM "Lead I
# (Einthoven)", EDF "ECG I" / "EKG V1". Anything else ("-aVR", "V3R", "V7") stays unknown:
# a lead is never guessed.
_DECORATION = re.compile(r"^(?:MDC_ECG_LEAD_|LEAD[ _]|ECG[ _]|EKG[ _])?(.+?)(?:\s*\(\w+\))?$")


def canonical_lead(name: str) -> str:
    """The standard spelling of ``name`` when it is one of the 12 leads, else ``name``."""
    text = name.strip()
    match = _DECORATION.match(text.upper())
    return _CANONICAL.get(match[1].strip() if match else text.upper(), text)


def lead_order(
    where: object,
    sig_name: Sequence[str | None],
    field: str = "sig_name",
    derivable: Sequence[str] = (),
) -> tuple[list[int | None], tuple[str, ...]]:
    """Indices into ``sig_name`` of the 12 standard leads in :data:`LEADS` order (None for
    a lead of ``derivable`` that is not stored: the caller derives it), and notes on what
    differs from the standard layout. ``where`` (a file) and ``field`` (where the names are
    stored in it) start every error."""
    raw = [str(n or "").strip() for n in sig_name]
    names = [canonical_lead(n) for n in raw]
    missing = [lead for lead in LEADS if lead not in names and lead not in derivable]
    unknown = [r for r, n in zip(raw, names, strict=True) if n not in LEADS]
    if missing:
        extra = f"; unknown lead name(s) {unknown}" if unknown else ""
        raise DataError(
            f"{where}: field {field!r} lacks lead(s) {', '.join(missing)}{extra}; "
            f"expected the 12 standard leads {', '.join(LEADS)}, found {len(raw)} "
            f"signal(s) {raw}"
        )
    doubled = [lead for lead in LEADS if names.count(lead) > 1]
    if doubled:
        raise DataError(
            f"{where}: field {field!r} names lead(s) {', '.join(doubled)} more than once, "
            "expected each of the 12 standard leads once"
        )
    order = [names.index(lead) if lead in names else None for lead in LEADS]
    notes = []
    stored = [n for n in names if n in LEADS]
    if stored != [lead for lead in LEADS if lead in names]:
        notes.append(f"leads reordered by name (stored as {', '.join(stored)})")
    if unknown:
        notes.append(f"extra lead(s) left out: {', '.join(unknown)}")
    return order, tuple(notes)
