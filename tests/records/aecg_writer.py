"""Test helper: a :class:`Recording` written as HL7 aECG the way the FDA's example does: a
RHYTHM series with one sequence set (a GLIST_TS time sequence, GLIST_PQ without a start
time; 12 SLIST_PQ leads at origin 0 µV, scale 2.5 µV) and a representative-beat derived
series beside it. Quantisation: ±1.25 µV."""

from __future__ import annotations

import uuid
from pathlib import Path
from xml.etree.ElementTree import Element, SubElement, register_namespace, tostring

import numpy as np

from mrm_edge.data.dataset import LEADS
from mrm_edge.records.recording import Recording

HL7 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SCALE_UV = 2.5
BEAT_SAMPLES = 600

register_namespace("", HL7)
register_namespace("xsi", XSI)


def write_aecg(path: Path, rec: Recording) -> Path:
    root = _el(None, "AnnotatedECG", type="Observation")
    _el(root, "id", root=rec.record_id or str(uuid.uuid4()))
    _el(root, "code", code="93000", codeSystem="2.16.840.1.113883.6.12")
    head = _timestamp(rec.start_time) if rec.start_time else None
    if head:
        _el(_el(root, "effectiveTime"), "center", value=head)
    if rec.patient_id:
        subject = root
        for tag in ("componentOf", "timepointEvent", "componentOf", "subjectAssignment",
                    "subject", "trialSubject"):  # fmt: skip
            subject = _el(subject, tag)
        _el(subject, "id", extension=rec.patient_id)
    digits = np.round(rec.signal.astype(np.float64) * 1000 / SCALE_UV).astype(np.int64)
    series = _series(_el(root, "component"), "series", "RHYTHM", head, rec.sampling_rate, digits)
    beat = digits[:, :BEAT_SAMPLES]  # a stand-in beat: the reader must not take it
    _series(_el(series, "derivation"), "derivedSeries", "REPRESENTATIVE_BEAT", head,
            rec.sampling_rate, beat)  # fmt: skip
    text = tostring(root, encoding="unicode")
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?>\n{text}\n', encoding="utf-8")
    return path


def _el(parent: Element | None, tag: str, **attrs: str) -> Element:
    name = f"{{{HL7}}}{tag}"
    return Element(name, attrs) if parent is None else SubElement(parent, name, attrs)


def _series(parent: Element, tag: str, code: str, head: str | None, rate: int, digits) -> Element:
    """A series; its time sequence absolute (GLIST_TS from ``head``) or, without a start
    time, relative (GLIST_PQ from 0 s)."""
    series = _el(parent, tag)
    _el(series, "code", code=code, codeSystem="2.16.840.1.113883.5.4")
    sequence_set = _el(_el(series, "component"), "sequenceSet")
    time = _el(_el(sequence_set, "component"), "sequence")
    kind = ("TIME_ABSOLUTE", "GLIST_TS") if head else ("TIME_RELATIVE", "GLIST_PQ")
    _el(time, "code", code=kind[0], codeSystem="2.16.840.1.113883.5.4")
    value = _el(time, "value", **{f"{{{XSI}}}type": kind[1]})
    _el(value, "head", **({"value": head} if head else {"value": "0", "unit": "s"}))
    _el(value, "increment", value=repr(1 / rate), unit="s")
    for name, row in zip(LEADS, digits, strict=True):
        sequence = _el(_el(sequence_set, "component"), "sequence")
        _el(
            sequence,
            "code",
            code=f"MDC_ECG_LEAD_{name.upper()}",
            codeSystem="2.16.840.1.113883.6.24",
        )
        value = _el(sequence, "value", **{f"{{{XSI}}}type": "SLIST_PQ"})
        _el(value, "origin", value="0", unit="uV")
        _el(value, "scale", value=str(SCALE_UV), unit="uV")
        _el(value, "digits").text = " ".join(map(str, row.tolist()))
    return series


def _timestamp(iso: str) -> str:
    """ISO 8601 (as the readers return it) → an HL7 TS, YYYYMMDDHHMMSS."""
    return "".join(c for c in iso[:19] if c.isdigit())
