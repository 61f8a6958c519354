"""Results as FHIR R4: one transaction Bundle per report (a DiagnosticReport for the ECG
study, an Observation per label, the model's Device, the Patient), every resource validated
with ``fhir.resources`` before it leaves. Delivered over HTTP(S) to a FHIR base URL
(``FhirChannel``) or appended to NDJSON files (``FhirNdjsonChannel``). Every resource is created
conditionally on an identifier derived from the message id, so a Bundle sent again after a
lost answer creates nothing twice. docs/outbox.md, "FHIR R4"."""

from __future__ import annotations

import ipaddress
import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mrm_edge.runtime.outbox.codes import ECG_STUDY, LOCAL, CodeTable
from mrm_edge.runtime.outbox.report import LabelResult, ResultReport
from mrm_edge.runtime.outbox.store import Message

if TYPE_CHECKING:
    from mrm_edge.runtime.outbox.channels import ChannelOptions

INSTALL_HINT = "pip install 'mrm-edge[fhir]'"
#: Identifier systems: the message a resource came from, the model as served, the subject.
MESSAGE_SYSTEM = "urn:mrm-edge:message"
DEVICE_SYSTEM = "urn:mrm-edge:model"
SUBJECT_SYSTEM = "urn:mrm-edge:subject"
"""A patient id read from the file or given by the device (its assigning system unknown)."""
STREAM_SYSTEM = "urn:mrm-edge:device-stream"
"""No patient id: the monitor's stream id stands for the subject."""
UCUM = "http://unitsofmeasure.org"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
REPORT_CATEGORY = {
    "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
    "code": "EC",
    "display": "Electrocardiac (e.g., EKG, EEC, Holter)",
}
OBSERVATION_CATEGORY = {
    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
    "code": "procedure",
    "display": "Procedure",
}
#: An answer is read up to this size and for at most this long (a hostile or broken server).
MAX_RESPONSE_BYTES = 1024 * 1024
TIMEOUT_S = 10.0
_ENTRY_NAMESPACE = uuid.UUID("0b7c3d52-7a55-5c1e-8f5e-2d4b9a6e1f30")


class FhirValidationError(RuntimeError):
    """A composed resource that FHIR R4 refuses: a bug in this module, never sent."""


def _instant(t: datetime) -> str:
    # A naive time is the machine's local wall clock (Python's own reading of it).
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def _ref(kind: str, key: str) -> str:
    """The entry's fullUrl: stable for the same message and resource."""
    return f"urn:uuid:{uuid.uuid5(_ENTRY_NAMESPACE, f'{kind}|{key}')}"


def _entry(resource: dict[str, Any], full_url: str, system: str, value: str) -> dict[str, Any]:
    """A conditional create: the receiver creates the resource only if none carries the
    identifier yet (else it uses that one, references included)."""
    kind = resource.pop("resourceType")
    resource = {"resourceType": kind, "identifier": [{"system": system, "value": value}]} | resource
    query = urllib.parse.urlencode({"identifier": f"{system}|{value}"})
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "POST", "url": kind, "ifNoneExist": query},
    }


def _probability(value: float) -> dict[str, Any]:
    return {"value": round(float(value), 6), "unit": "probability", "system": UCUM, "code": "1"}


def _observation(report: ResultReport, result: LabelResult, codes: CodeTable, refs: dict):
    code = {"coding": [c.fhir() for c in codes.codings(result.label)], "text": result.label}
    flag = "POS" if result.positive else "NEG"
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [OBSERVATION_CATEGORY]}],
        "code": code,
        "subject": {"reference": refs["subject"]},
        "effectivePeriod": {"start": _instant(report.start), "end": _instant(report.end)},
        "valueQuantity": _probability(result.probability),
        "interpretation": [{"coding": [{"system": INTERPRETATION, "code": flag}]}],
        # The decision threshold: positive when the (smoothed) probability reaches it.
        "referenceRange": [{"high": _probability(result.threshold), "text": "threshold"}],
        "device": {"reference": refs["device"]},
    }
    if result.smoothed is not None:
        smoothed = {"coding": [{"system": LOCAL, "code": "smoothed-probability"}]}
        obs["component"] = [{"code": smoothed, "valueQuantity": _probability(result.smoothed)}]
    key = f"{report.message_id}/{result.label}"
    return _entry(obs, _ref("Observation", key), MESSAGE_SYSTEM, key)


def _conclusion(report: ResultReport) -> str:
    if report.kind == "alarm":
        label = report.labels[0].label
        return f"alarm {label} {report.alarm_state}" + "".join(f"; {n}" for n in report.notes)
    found = ", ".join(report.conclusions) or "no finding"
    return f"{found} ({report.windows} windows classified, {report.rejected} rejected)"


def bundle(report: ResultReport, codes: CodeTable) -> dict[str, Any]:
    """The transaction Bundle of one report (not yet validated)."""
    subject_system = SUBJECT_SYSTEM if report.subject else STREAM_SYSTEM
    subject_value = report.subject or report.stream_id
    model = report.model
    device_key = str(uuid.uuid5(_ENTRY_NAMESPACE, f"{model.name}|{model.sha256}|{model.backend}"))
    refs = {
        "subject": _ref("Patient", f"{subject_system}|{subject_value}"),
        "device": _ref("Device", device_key),
    }
    patient = _entry({"resourceType": "Patient"}, refs["subject"], subject_system, subject_value)
    device = _entry(
        {
            "resourceType": "Device",
            "deviceName": [{"name": model.name, "type": "model-name"}],
            "type": {"text": "ECG classification model"},
            "version": [{"type": {"text": "ONNX graph SHA-256"}, "value": model.sha256}],
            "property": [
                {"type": {"text": "backend and precision"}, "valueCode": [{"text": model.backend}]}
            ],
        },
        refs["device"], DEVICE_SYSTEM, device_key,
    )  # fmt: skip
    observations = [_observation(report, r, codes, refs) for r in report.labels]
    diagnostic = {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "category": [{"coding": [REPORT_CATEGORY]}],
        "code": {"coding": [ECG_STUDY.fhir()], "text": "ECG classification"},
        "subject": {"reference": refs["subject"]},
        "effectivePeriod": {"start": _instant(report.start), "end": _instant(report.end)},
        "issued": _instant(datetime.now(timezone.utc)),
        "result": [{"reference": o["fullUrl"]} for o in observations],
        "conclusion": _conclusion(report),
    }
    if report.conclusions:
        diagnostic["conclusionCode"] = [
            {"coding": [c.fhir() for c in codes.codings(label)], "text": label}
            for label in report.conclusions
        ]
    dr = _entry(diagnostic, _ref("DiagnosticReport", report.message_id), MESSAGE_SYSTEM,
                report.message_id)  # fmt: skip
    return {
        "resourceType": "Bundle",
        "identifier": {"system": MESSAGE_SYSTEM, "value": report.message_id},
        "type": "transaction",
        "timestamp": diagnostic["issued"],
        "entry": [patient, device, *observations, dr],
    }


def require_fhir_resources() -> None:
    """Refuse at start (one line, ValueError as for a bad --sink) when the extra is missing,
    rather than at the first report."""
    try:
        import fhir.resources.R4B  # noqa: F401
    except ImportError:
        raise ValueError(f"FHIR output needs fhir.resources: {INSTALL_HINT}") from None


def validate(resource: dict[str, Any]) -> None:
    """Refuse a resource (a Bundle: with every resource in it) that FHIR R4 does not allow
    (``fhir.resources``' R4B models: R4's resources as used here are unchanged in R4B)."""
    try:
        from fhir.resources.R4B import get_fhir_model_class
    except ImportError:
        raise RuntimeError(f"FHIR output needs fhir.resources: {INSTALL_HINT}") from None
    from pydantic import ValidationError

    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except (ValidationError, KeyError, ValueError) as e:
        detail = " ".join(str(e).split())
        raise FhirValidationError(f"composed FHIR resource is not valid R4: {detail}") from None


def compose(report: ResultReport, codes: CodeTable) -> bytes:
    """The Bundle as one line of JSON (validated; raises FhirValidationError otherwise)."""
    doc = bundle(report, codes)
    validate(doc)
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST is not followed: urllib would turn it into a GET, whose 200 is no
    acknowledgement of the Bundle."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise ConnectionError(f"HTTP {code}: redirected to {newurl}; fix the FHIR base URL")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class FhirChannel:
    """POSTs each Bundle to a FHIR R4 base URL (a transaction). The bearer token is read from
    ``token_env`` at every send (rotated tokens apply at once; never logged); HTTPS is
    verified (``ssl_context``, default: the system's CAs); plain HTTP only to loopback."""

    def __init__(
        self,
        base_url: str,
        *,
        codes: CodeTable | None = None,
        token_env: str = "MRM_EDGE_FHIR_TOKEN",
        ssl_context: ssl.SSLContext | None = None,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        require_fhir_resources()
        url = urllib.parse.urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"FHIR base URL {base_url!r}: expected http(s)://HOST[:PORT]/PATH")
        if url.scheme == "http" and not _is_loopback(url.hostname):
            raise ValueError(
                f"FHIR base URL {base_url!r}: results are health data; use https:// "
                "(plain http only to this machine's loopback)"
            )
        self.name = f"fhir:{base_url}"
        self.base_url = base_url
        self.codes = codes or CodeTable()
        self.token_env = token_env
        self.timeout_s = timeout_s
        context = ssl_context or ssl.create_default_context()
        self._opener = urllib.request.build_opener(
            _NoRedirect, urllib.request.HTTPSHandler(context=context)
        )

    @classmethod
    def from_spec(cls, argument: str, options: ChannelOptions) -> FhirChannel:
        """``--sink fhir:URL`` (runtime/outbox/channels.py's ``ChannelOptions``)."""
        return cls(
            argument, codes=options.codes, timeout_s=options.timeout_s,
            ssl_context=options.tls_context(),
        )  # fmt: skip

    def compose(self, report: ResultReport) -> bytes:
        return compose(report, self.codes)

    def send(self, message: Message) -> str | None:
        headers = {
            "Content-Type": "application/fhir+json",
            "Accept": "application/fhir+json",
        }
        token = os.environ.get(self.token_env)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.base_url, message.body, headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout_s) as answer:
                self._read(answer)  # the whole answer: the transaction is complete
                return None
        except urllib.error.HTTPError as e:
            with e:
                body = self._read(e)
            if 400 <= e.code < 500 and e.code not in (408, 429):
                return f"HTTP {e.code}: {_outcome(body) or e.reason}"
            raise ConnectionError(f"HTTP {e.code}: {_outcome(body) or e.reason}") from None

    def _read(self, answer: Any) -> bytes:
        """The answer's first ``MAX_RESPONSE_BYTES`` (the rest is not needed), read within
        ``timeout_s`` in all (a server dripping bytes is cut off, not waited for)."""
        deadline = time.monotonic() + self.timeout_s
        chunks, size = [], 0
        # read1: what one receive brings (read(n) would wait for all n bytes, however slow).
        while size < MAX_RESPONSE_BYTES and (chunk := answer.read1(64 * 1024)):
            chunks.append(chunk)
            size += len(chunk)
            if time.monotonic() > deadline:
                raise TimeoutError(f"answer not read within {self.timeout_s:g} s")
        return b"".join(chunks)[:MAX_RESPONSE_BYTES]

    def close(self) -> None:
        """Nothing held: each send is one request (urllib keeps no connection)."""


def _outcome(body: bytes) -> str:
    """The OperationOutcome's issues as one line (at most 300 characters), else ''."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(doc, dict) or doc.get("resourceType") != "OperationOutcome":
        return ""
    parts = []
    for issue in doc.get("issue") or []:
        if isinstance(issue, dict):
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or ""
            parts.append(f"{issue.get('severity', '?')} {issue.get('code', '?')}: {text}")
    return " ".join("; ".join(parts).split())[:300]


class FhirNdjsonChannel:
    """Appends each Bundle as one line to ``DIR/results-YYYY-MM-DD.ndjson`` (UTC date of
    writing), fsynced: acknowledged once on disk. For a bulk import or an ETL job; a Bundle
    written twice (a crash between the write and the outbox's delete) has the same
    identifiers, so an importer using conditional create drops the second."""

    def __init__(self, directory: Path, *, codes: CodeTable | None = None) -> None:
        require_fhir_resources()
        self.directory = Path(directory)
        self.name = f"fhir-ndjson:{self.directory}"
        self.codes = codes or CodeTable()

    @classmethod
    def from_spec(cls, argument: str, options: ChannelOptions) -> FhirNdjsonChannel:
        """``--sink fhir-ndjson:DIR``."""
        return cls(Path(argument), codes=options.codes)

    def compose(self, report: ResultReport) -> bytes:
        return compose(report, self.codes)

    def send(self, message: Message) -> str | None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"results-{datetime.now(timezone.utc):%Y-%m-%d}.ndjson"
        new = not path.exists()
        with open(path, "ab") as f:
            f.write(message.body.rstrip(b"\n") + b"\n")
            f.flush()
            os.fsync(f.fileno())
        if new:  # the new file's name must survive a power loss too
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return None

    def close(self) -> None:
        """Nothing held open between messages."""
