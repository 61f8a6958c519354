"""The FHIR channel against a real FHIR endpoint on loopback (fhir_server.py: validates every
request with fhir.resources, conditional create by identifier) through the real outbox and
courier: answers of 5xx, 429, no answer in time and a lost response are retried and every
report arrives exactly once, in order; a 422 with an OperationOutcome is set aside with its
reason; the bearer token comes from the environment; TLS is verified. And the NDJSON files."""

from __future__ import annotations

import json
import ssl
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

pytest.importorskip("fhir.resources", reason="the [fhir] extra is not installed")

from mrm_edge.runtime.outbox.codes import LOCAL, SNOMED, CodeTable
from mrm_edge.runtime.outbox.courier import Courier
from mrm_edge.runtime.outbox.fhir import (
    MESSAGE_SYSTEM,
    STREAM_SYSTEM,
    SUBJECT_SYSTEM,
    FhirChannel,
    FhirNdjsonChannel,
    FhirValidationError,
    bundle,
    compose,
    validate,
)
from mrm_edge.runtime.outbox.report import (
    LabelResult,
    ModelIdentity,
    ResultReport,
    message_id,
)
from mrm_edge.runtime.outbox.store import Message, Outbox

from tests.runtime.outbox.fhir_server import FhirServer

MODEL = ModelIdentity("mrm-net-ptbxl-superdiagnostic", "5e" * 32, "onnxruntime CPU fp32")
T0 = datetime(2026, 12, 7, 9, 30, tzinfo=timezone.utc)
CODES = CodeTable("ptbxl")


def report(i: int, subject: str | None, stream: str = "wfdb:00001") -> ResultReport:
    labels = (
        LabelResult("MI", 0.81, 0.74, 0.22, True, True),
        LabelResult("NORM", 0.05, 0.04, 0.86, False, False),
        LabelResult("STTC", 0.12, None, 0.30, False, True),
    )
    start = T0 + timedelta(seconds=10 * i)
    return ResultReport(
        "record", message_id(MODEL, stream, i, "record"), stream, i, subject, start,
        start + timedelta(seconds=10), labels, ("MI",), MODEL, windows=3, rejected=1,
    )  # fmt: skip


def deliver(box: Outbox, channel, reports: list[ResultReport], timeout_s: float = 60) -> str:
    """Store the reports, run a courier until nothing is pending, stop it; its notices."""
    for r in reports:
        assert box.put(channel.name, r.message_id, r.stream_id, channel.compose(r))
    notes: list[str] = []
    courier = Courier(box, channel, notes.append, backoff_first_s=0.05, backoff_max_s=0.2)
    courier.start()
    deadline = time.monotonic() + timeout_s
    while box.next_pending(channel.name) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    courier.stop(drain_s=1.0)
    return "\n".join(notes)


def test_every_report_arrives_once_in_order_through_faults_and_a_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MRM_EDGE_FHIR_TOKEN", "s3cret-token")
    reports = [report(i, "patient-7" if i % 2 else None) for i in range(6)]
    refused = report(6, "unknown-patient")
    reports.insert(3, refused)
    faults = ["500", "lost", "ok", "slow", "429", "ok", "503", "lost"]
    with FhirServer(faults, refuse=("unknown-patient",), stall_s=1.5) as server:
        channel = FhirChannel(server.url, codes=CODES, timeout_s=0.5)
        box = Outbox(tmp_path / "outbox.sqlite")
        notices = deliver(box, channel, reports)
        assert "unreachable" in notices and "refused by the receiver" in notices

        # The faults were met (retries sent Bundles again), yet nothing was created twice.
        assert set(faults) <= set(server.answered) and server.requests > len(reports)
        reports_made = [v for kind, v in server.created if kind == "DiagnosticReport"]
        expected = [r.message_id for r in reports if r is not refused]
        assert reports_made == expected  # exactly once each, in the order stored
        observations = [v for kind, v in server.created if kind == "Observation"]
        assert len(observations) == len(set(observations)) == 3 * len(expected)
        patients = server.resources("Patient")
        assert sorted(p["identifier"][0]["value"] for p in patients) == [
            "patient-7",
            "wfdb:00001",
        ]
        assert len(server.resources("Device")) == 1
        assert server.invalid == []
        assert set(server.authorization) == {"Bearer s3cret-token"}

        # References point at the stored resources (conditional creates resolved).
        first = next(
            d for d in server.resources("DiagnosticReport")
            if d["identifier"][0]["value"] == reports[1].message_id
        )  # fmt: skip
        patient_ids = {p["identifier"][0]["value"]: p["id"] for p in patients}
        assert first["subject"]["reference"] == f"Patient/{patient_ids['patient-7']}"
        assert all(ref["reference"].startswith("Observation/") for ref in first["result"])

    (kept,) = box.messages(channel.name)
    assert kept.message_id == refused.message_id and kept.state == "rejected"
    assert kept.last_error.startswith("HTTP 422: error business-rule: Patient identifier")
    said = notices + repr(box.history()) + repr(box.messages())
    assert "s3cret" not in said  # the token is sent, never logged


def test_the_bundle_says_what_the_report_says() -> None:
    r = report(2, None)
    doc = json.loads(compose(r, CODES))
    by_type = {}
    for entry in doc["entry"]:
        by_type.setdefault(entry["resource"]["resourceType"], []).append(entry)
    (patient,) = by_type["Patient"]
    assert patient["resource"]["identifier"] == [{"system": STREAM_SYSTEM, "value": r.stream_id}]
    assert patient["request"]["ifNoneExist"].startswith("identifier=urn%3Amrm-edge%3A")
    (dr,) = [e["resource"] for e in by_type["DiagnosticReport"]]
    assert dr["identifier"] == [{"system": MESSAGE_SYSTEM, "value": r.message_id}]
    assert dr["code"]["coding"][0] == {
        "system": "http://loinc.org", "code": "11524-6", "display": "EKG study",
    }  # fmt: skip
    assert dr["effectivePeriod"] == {
        "start": "2026-12-07T09:30:20.000+00:00", "end": "2026-12-07T09:30:30.000+00:00",
    }  # fmt: skip
    assert dr["conclusionCode"][0]["coding"][0] == {
        "system": SNOMED, "code": "164865005", "display": "myocardial infarction",
    }  # fmt: skip
    mi, norm, sttc = (e["resource"] for e in by_type["Observation"])
    assert mi["valueQuantity"]["value"] == 0.81 and mi["interpretation"][0]["coding"][0]["code"]
    assert mi["interpretation"][0]["coding"][0]["code"] == "POS"
    assert norm["interpretation"][0]["coding"][0]["code"] == "NEG"
    assert mi["referenceRange"][0]["high"]["value"] == 0.22
    assert mi["component"][0]["valueQuantity"]["value"] == 0.74  # smoothed
    assert "component" not in sttc  # not smoothed
    assert [c["system"] for c in norm["code"]["coding"]] == [LOCAL]  # no published code
    (device,) = [e["resource"] for e in by_type["Device"]]
    assert device["version"][0]["value"] == MODEL.sha256
    assert device["property"][0]["valueCode"][0]["text"] == MODEL.backend
    # The subject's own id when the file or device gave one.
    subject = bundle(report(2, "MRN-1234"), CODES)["entry"][0]["resource"]["identifier"]
    assert subject == [{"system": SUBJECT_SYSTEM, "value": "MRN-1234"}]


def test_a_resource_fhir_refuses_never_leaves() -> None:
    doc = bundle(report(0, None), CODES)
    del doc["entry"][2]["resource"]["status"]  # required
    with pytest.raises(FhirValidationError, match=r"entry\.2\.resource\.status"):
        validate(doc)
    doc["entry"][2]["resource"]["status"] = "final"
    doc["entry"][2]["resource"]["valueQuantity"]["value"] = "high"
    with pytest.raises(FhirValidationError, match="Decimal"):
        validate(doc)
    # fhir.resources checks structure and types, not value sets: a real server's job.
    doc["entry"][2]["resource"]["valueQuantity"]["value"] = 0.5
    doc["entry"][2]["resource"]["status"] = "done"
    validate(doc)


def test_tls_is_verified_against_the_given_ca_and_refused_otherwise(pki) -> None:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(pki.server.cert, pki.server.key)
    body = compose(report(0, None), CODES)
    msg = Message(1, "fhir", "m", "s", 0.0, body, 0, "", "pending")
    with FhirServer(tls=tls) as server:
        trusted = ssl.create_default_context(cafile=str(pki.ca))
        assert FhirChannel(server.url, ssl_context=trusted).send(msg) is None
        assert len(server.resources("DiagnosticReport")) == 1
        for context in (ssl.create_default_context(cafile=str(pki.other_ca)), None):
            with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
                FhirChannel(server.url, ssl_context=context, timeout_s=2).send(msg)
    assert len(server.resources("DiagnosticReport")) == 1


def test_plain_http_only_to_loopback_and_a_redirect_is_no_acknowledgement() -> None:
    with pytest.raises(ValueError, match="use https://"):
        FhirChannel("http://fhir.example.org/fhir")
    with pytest.raises(ValueError, match="expected http"):
        FhirChannel("ftp://127.0.0.1/fhir")
    with FhirServer() as server:
        msg = Message(1, "fhir", "m", "s", 0.0, compose(report(0, None), CODES), 0, "", "pending")
        reason = FhirChannel(server.url.replace("/fhir", "/other")).send(msg)
        assert reason == "HTTP 404: error not-found: no endpoint /other"
        with pytest.raises(ConnectionError, match=r"HTTP 307: redirected to .*/fhir"):
            FhirChannel(server.url.replace("/fhir", "/moved")).send(msg)
    assert server.created == []


def test_an_answer_is_read_within_the_timeout_however_slowly_it_drips() -> None:
    msg = Message(1, "fhir", "m", "s", 0.0, compose(report(0, None), CODES), 0, "", "pending")
    with FhirServer(["drip"], stall_s=20.0) as server:
        with pytest.raises(TimeoutError, match=r"answer not read within 0\.5 s"):
            FhirChannel(server.url, timeout_s=0.5).send(msg)
        time.sleep(0.3)  # the server notices the hang-up at its next byte
        assert server.dripped < 100  # of 400: the client hung up, it did not wait them out


def test_without_the_extra_the_sink_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "fhir.resources.R4B", None)  # import fails
    for make in (lambda: FhirChannel("https://h/r4"), lambda: FhirNdjsonChannel(tmp_path)):
        with pytest.raises(ValueError, match=r"^FHIR output needs fhir.resources: pip install "):
            make()


def test_the_sink_specs_make_these_channels(tmp_path: Path) -> None:
    from mrm_edge.runtime.outbox.channels import ChannelOptions, make_channel

    url = "https://fhir.example.org/r4"
    channel = make_channel(f"fhir:{url}", ChannelOptions(timeout_s=3.0))
    assert isinstance(channel, FhirChannel) and channel.name == f"fhir:{url}"
    assert channel.timeout_s == 3.0
    ndjson = make_channel(f"fhir-ndjson:{tmp_path}", ChannelOptions())
    assert isinstance(ndjson, FhirNdjsonChannel) and ndjson.directory == tmp_path
    with pytest.raises(ValueError, match=r"^--sink 'fhir:http://10.1.2.3/fhir': .* use https://"):
        make_channel("fhir:http://10.1.2.3/fhir", ChannelOptions())


def test_ndjson_lines_parse_and_validate(tmp_path: Path) -> None:
    channel = FhirNdjsonChannel(tmp_path / "fhir-out", codes=CODES)
    box = Outbox(tmp_path / "outbox.sqlite")
    reports = [report(i, None) for i in range(4)]
    deliver(box, channel, reports)
    assert box.messages() == []
    (path,) = (tmp_path / "fhir-out").iterdir()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 4
    for line, r in zip(lines, reports, strict=True):
        doc = json.loads(line)
        validate(doc)
        assert doc["identifier"]["value"] == r.message_id
