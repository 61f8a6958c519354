"""HL7 aECG (the FDA's annotated ECG, HL7 v3 XML): the series coded RHYTHM (the derived
representative-beat series sits below it, under ``derivation``, and is not read), its
sequence sets: a ``GLIST_TS``/``GLIST_PQ`` time sequence (increment → rate) and one
``SLIST_PQ`` per lead (value = origin + scale × digit, each with its unit)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from xml.etree.ElementTree import Element

import numpy as np

from mrm_edge.data.errors import DataError
from mrm_edge.records.recording import (
    Recording,
    assemble,
    checked_length,
    checked_rate,
    mv_per_unit,
)
from mrm_edge.records.xmlsafe import XSI_TYPE, number, parse_xml

NS = {"h": "urn:hl7-org:v3"}
_SECONDS_PER = {"s": 1.0, "ms": 1e-3}
# HL7 TS: YYYYMMDD[HH[MM[SS[.S...]]]][+/-ZZZZ]
_TS = re.compile(r"(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})?(\d{2}(?:\.\d+)?)?)?([+-]\d{4})?$")


def read(path: Path) -> Recording:
    root = parse_xml(path)
    series = _rhythm_series(path, root)
    sets = series.findall("h:component/h:sequenceSet", NS)
    if not sets:
        raise DataError(f"{path}: the RHYTHM series has no sequenceSet, expected one")
    bases, names, rows, units = set(), [], [], []
    for sequence_set in sets:  # leads split over sets share one time base, or are refused
        bases.add(_time_base(path, sequence_set))
        for name, row, unit in _leads(path, sequence_set):
            names.append(name)
            rows.append(row)
            units.append(unit)
    if len(bases) > 1:
        raise DataError(
            f"{path}: sequence sets on different time bases (head, Hz) {sorted(bases)}, "
            "expected leads recorded together"
        )
    if len({len(r) for r in rows}) > 1:
        counts = ", ".join(f"{n} {len(r)}" for n, r in zip(names, rows, strict=True))
        raise DataError(f"{path}: leads hold different numbers of digits ({counts}), expected one")
    rate = bases.pop()[1]
    signal, notes, stored = assemble(
        path,
        names,
        np.stack(rows),
        units,
        lead_field="sequence code",
        unit_field="scale unit",
    )
    subject = root.find(".//h:subjectAssignment/h:subject/h:trialSubject/h:id", NS)
    return Recording(
        path.name, signal, rate, str(path), notes, stored, "hl7-aecg",
        _start_time(root), _identifier(subject), _identifier(root.find("h:id", NS)),
    )  # fmt: skip


def _rhythm_series(path: Path, root: Element) -> Element:
    series = root.findall("h:component/h:series", NS)
    codes = [_code(s) for s in series]
    if "RHYTHM" not in codes:
        raise DataError(f"{path}: no series coded RHYTHM (found {codes}), expected one")
    return series[codes.index("RHYTHM")]


def _code(elem: Element) -> str | None:
    code = elem.find("h:code", NS)
    return code.get("code") if code is not None else None


def _time_base(path: Path, sequence_set: Element) -> tuple[str, int]:
    """The head and rate of the set's time sequence (GLIST_TS, or GLIST_PQ for relative
    time)."""
    for value in sequence_set.findall("h:component/h:sequence/h:value", NS):
        if _value_type(value).startswith("GLIST"):
            break
    else:
        raise DataError(f"{path}: a sequenceSet has no GLIST_TS time sequence, expected one")
    increment = value.find("h:increment", NS)
    if increment is None:
        raise DataError(f"{path}: the time sequence has no increment, expected the sample interval")
    step = number(path, "the time increment", increment.get("value"))
    unit = increment.get("unit")
    if unit not in _SECONDS_PER:
        raise DataError(f"{path}: the time increment's unit is {unit!r}, expected s or ms")
    seconds = step * _SECONDS_PER[unit]
    rate = checked_rate(path, "1 / time increment", 1 / seconds if seconds > 0 else float("inf"))
    head = value.find("h:head", NS)
    return (head.get("value", "") if head is not None else ""), rate


def _leads(path: Path, sequence_set: Element):
    """(name, values in the scale's unit, that unit) of every SLIST_PQ sequence."""
    for sequence in sequence_set.findall("h:component/h:sequence", NS):
        value = sequence.find("h:value", NS)
        kind = _value_type(value) if value is not None else ""
        if kind.startswith("GLIST"):
            continue
        name = _code(sequence) or "?"
        where = f"{path}: lead {name}"
        if kind != "SLIST_PQ":
            raise DataError(f"{where}: value type is {kind!r}, expected SLIST_PQ")
        origin, origin_unit = _quantity(where, value, "origin")
        scale, unit = _quantity(where, value, "scale")
        if not scale > 0:
            raise DataError(f"{where}: field 'scale' is {scale:g}, expected > 0")
        # The origin in the scale's unit, so the lead keeps one stored unit.
        origin *= mv_per_unit(where, "field 'origin' unit", origin_unit) / mv_per_unit(
            where, "field 'scale' unit", unit
        )
        yield name, origin + scale * _digits(where, value.findtext("h:digits", "", NS)), unit


def _quantity(where: str, value: Element, field: str) -> tuple[float, str]:
    """A PQ child's value (finite) and unit."""
    elem = value.find(f"h:{field}", NS)
    if elem is None:
        raise DataError(f"{where}: field {field!r} is missing, expected a value and a unit")
    amount = number(where, f"field {field!r}", elem.get("value"))
    if not np.isfinite(amount):
        raise DataError(f"{where}: field {field!r} is {amount:g}, expected a finite number")
    return amount, elem.get("unit", "")


def _digits(where: str, text: str) -> np.ndarray:
    """The whitespace-separated numbers of ``text``, counted before anything is parsed, so
    a list of billions is refused without building it."""
    data = np.frombuffer(text.encode("utf-8"), np.uint8)
    space = data <= 32  # ASCII whitespace; anything else is part of a number or refused
    count = int(np.count_nonzero(~space[1:] & space[:-1])) + int(data.size > 0 and not space[0])
    if count == 0:
        raise DataError(f"{where}: field 'digits' is empty, expected the samples")
    checked_length(where, "the number of digits", count)
    del data, space
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # numpy's "unmatched data"
        try:
            values = np.fromstring(text, dtype=np.float64, sep=" ")
        except (DeprecationWarning, ValueError):
            values = None
    if values is None or len(values) != count:
        sample = text.strip()[:40]
        raise DataError(f"{where}: field 'digits' is not a list of numbers (starts {sample!r})")
    return values


def _value_type(value: Element) -> str:
    return value.get(XSI_TYPE, "").rpartition(":")[2]


def _identifier(elem: Element | None) -> str | None:
    """An HL7 II: its extension, or its root when it has none."""
    if elem is None:
        return None
    return elem.get("extension") or elem.get("root") or None


def _start_time(root: Element) -> str | None:
    """The AnnotatedECG's effectiveTime (center, else low) as ISO 8601; as stored if it is
    no HL7 timestamp."""
    time = root.find("h:effectiveTime/h:center", NS)
    if time is None:
        time = root.find("h:effectiveTime/h:low", NS)
    stamp = time.get("value") if time is not None else None
    match = _TS.match(stamp or "")
    if not match:
        return stamp
    year, month, day, hour, minute, second, zone = match.groups()
    iso = f"{year}-{month}-{day}"
    if hour:
        iso += f"T{hour}:{minute or '00'}:{second or '00'}"
    return iso + (f"{zone[:3]}:{zone[3:]}" if zone else "")
