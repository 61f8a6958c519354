"""HL7 v2.5.1 ORU^R01 over MLLP: one result message per report, sent on a persistent
connection (TLS where the receiver offers it) and answered by an ACK. The ER7 text is
assembled here with the standard library (the edge install stays small, and every free
text goes through one escaper: stream ids and subjects come from devices and files); the
tests parse and validate each message with ``hl7`` and ``hl7apy``. Layout, ACK handling
and what an interface engine adds: docs/outbox.md."""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from mrm_edge.runtime.outbox.codes import ECG_STUDY, LOCAL, LOINC, SNOMED, CodeTable, Coding
from mrm_edge.runtime.outbox.report import ResultReport, now
from mrm_edge.runtime.sources.network import parse_address

if TYPE_CHECKING:
    from mrm_edge.runtime.outbox.channels import ChannelOptions
from mrm_edge.runtime.outbox.store import Message

SENDING_APPLICATION = "MRM-EDGE"
LOCAL_CODES = "99MRM"  # a local coding system (HL7: "99zzz") for what no standard codes
STREAM_AUTHORITY = "MRM-EDGE-STREAM"  # PID-3's assigning authority for a device stream id
TIMEOUT_S = 10.0
ACK_LIMIT = 64 * 1024  # bytes a receiver's answer may take before it is refused
TEXT_LIMIT = 199  # characters of any one free text (the ST length of v2.5.1)

_START, _END = b"\x0b", b"\x1c\x0d"
_DELIMITERS = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"}
# Delimiters, and every control character (CR ends a segment; 0x0B and 0x1C end an MLLP
# block) or line separator a receiver might split on: sent as the \Xhh\ escape.
_SPECIAL = re.compile("[\\\\|^&~\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape(text: str) -> str:
    """``text`` as one HL7 field value, delimiters escaped: at most TEXT_LIMIT characters
    once escaped (validators count the escapes), cut before an escape, never inside one."""
    escaped = _SPECIAL.sub(
        lambda m: _DELIMITERS.get(m[0]) or f"\\X{m[0].encode().hex().upper()}\\",
        text[:TEXT_LIMIT],
    )
    if len(escaped) > TEXT_LIMIT:
        escaped = escaped[:TEXT_LIMIT]  # each escape is \...\: an odd count cut one open
        if escaped.count("\\") % 2:
            escaped = escaped[: escaped.rindex("\\")]
    return escaped


def _ts(moment: datetime) -> str:
    utc = moment.astimezone(timezone.utc)
    return f"{utc:%Y%m%d%H%M%S}.{utc.microsecond // 1000:03d}+0000"


# The code table's systems by their HL7 v2 names (table 0396); another (a card's own) as is.
_SYSTEMS = {SNOMED: "SCT", LOINC: "LN", LOCAL: LOCAL_CODES}


def _coded(coding: Coding) -> str:
    system = _SYSTEMS.get(coding.system, coding.system)
    return f"{escape(coding.code)}^{escape(coding.display)}^{escape(system)}"


class Hl7NoAnswer(ConnectionError):
    """What came back is not an acknowledgement of the message sent (the courier retries)."""


class Hl7Channel:
    """ORU^R01 messages to one MLLP receiver (``tls``: a client context that verifies the
    receiver's certificate; ``codes``: the model's label codes). ``send`` waits up to
    ``timeout_s`` for the ACK."""

    def __init__(
        self, host: str, port: int, *, tls: ssl.SSLContext | None = None,
        codes: CodeTable | None = None, timeout_s: float = TIMEOUT_S,
    ) -> None:  # fmt: skip
        self.host, self.port, self.tls, self.timeout_s = host, port, tls, timeout_s
        self.codes = codes or CodeTable()
        shown = f"[{host}]" if ":" in host else host  # an IPv6 address as written
        self.name = f"{'hl7s' if tls else 'hl7'}:{shown}:{port}"
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()  # guards _sock only, never held while waiting

    @classmethod
    def from_spec(cls, argument: str, options: ChannelOptions, *, tls: bool) -> Hl7Channel:
        """``--sink hl7:HOST:PORT`` (``hl7s:``: MLLP over TLS, the receiver verified)."""
        host, port = parse_address(argument, "hl7s" if tls else "hl7")
        context = options.tls_context() if tls else None
        return cls(host, port, tls=context, codes=options.codes, timeout_s=options.timeout_s)

    def compose(self, report: ResultReport) -> bytes:
        segments = [
            _msh(report.message_id),
            _pid(report),
            _obr(report),
            *(f"NTE|{i}|L|{escape(note)}" for i, note in enumerate(_notes(report), 1)),
            *_observations(report, self.codes),
        ]
        return ("\r".join(segments) + "\r").encode("utf-8", "replace")

    def send(self, message: Message) -> str | None:
        deadline = time.monotonic() + self.timeout_s
        sock = self._connection()
        sock.sendall(_START + message.body + _END)
        return _verdict(_read_block(sock, deadline), escape(message.message_id))

    def _connection(self) -> socket.socket:
        with self._lock:
            if self._sock is not None:
                self._sock.settimeout(self.timeout_s)
                return self._sock
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        try:
            sock = self.tls.wrap_socket(raw, server_hostname=self.host) if self.tls else raw
        except BaseException:
            raw.close()
            raise
        with self._lock:
            self._sock = sock
        return sock

    def close(self) -> None:
        """Drop the connection; a ``send`` waiting on it in another thread returns at once."""
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):  # already reset by the receiver
                sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv; close alone may not
            sock.close()


def _read_block(sock: socket.socket, deadline: float) -> bytes:
    """One MLLP block, bounded in size and in time (a receiver trickling bytes included)."""
    buf = bytearray()
    while (end := buf.find(_END)) < 0:
        if buf and not buf.startswith(_START):
            raise Hl7NoAnswer("the receiver's answer is not an MLLP block")
        if len(buf) > ACK_LIMIT:
            raise Hl7NoAnswer(f"the receiver's answer exceeds {ACK_LIMIT} bytes")
        try:
            sock.settimeout(max(deadline - time.monotonic(), 1e-3))
            chunk = sock.recv(4096)
        except TimeoutError:
            raise TimeoutError("no acknowledgement in time") from None
        if not chunk:
            raise Hl7NoAnswer("the receiver closed the connection before acknowledging")
        buf += chunk
    if not buf.startswith(_START):
        raise Hl7NoAnswer("the receiver's answer is not an MLLP block")
    return bytes(buf[1:end])


def _verdict(ack: bytes, control_id: str) -> str | None:
    """None for an accept (AA, CA); the reason for a refusal (AE, AR, CE, CR)."""
    segments = [s for s in re.split(r"\r\n|\r|\n", ack.decode("utf-8", "replace")) if s]
    if not segments or not segments[0].startswith("MSH") or len(segments[0]) < 8:
        raise Hl7NoAnswer("the receiver's answer is not an HL7 message")
    sep = segments[0][3]
    fields = {}
    for segment in segments:
        fields.setdefault(segment[:3], segment.split(sep))
    msa = [*fields.get("MSA", []), "", "", ""]
    if msa[2] != control_id:
        raise Hl7NoAnswer(f"the ACK is for message {_printable(msa[2])!r}, not {control_id}")
    code = msa[1]
    if code in ("AA", "CA"):
        return None
    if code not in ("AE", "AR", "CE", "CR"):
        raise Hl7NoAnswer(f"the ACK's code (MSA-1) is {_printable(code)!r}")
    err = [*fields.get("ERR", []), *[""] * 9]
    error_code_text = [*err[3].split(segments[0][4]), ""][1]  # ERR-3: code^text^table
    texts = (msa[3], err[8], error_code_text, err[1])  # ERR-8 user message, ERR-1 (v2.4)
    return f"{code}: " + ("; ".join(_printable(t) for t in texts if t) or "no reason given")


def _printable(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", text)[:TEXT_LIMIT]


def _msh(message_id: str) -> str:
    return "|".join((
        "MSH", "^~\\&", SENDING_APPLICATION, "", "", "", _ts(now()), "", "ORU^R01^ORU_R01",
        escape(message_id), "P", "2.5.1", "", "", "", "", "", "UNICODE UTF-8",
    ))  # fmt: skip


def _pid(report: ResultReport) -> str:
    """PID-3: the subject the file or device gave (type PI), else the stream id (type U,
    assigned by MRM-EDGE-STREAM). PID-5 (required): a name of type U, none being known."""
    if report.subject:
        patient = f"{escape(report.subject)}^^^^PI"
    else:
        patient = f"{escape(report.stream_id)}^^^{STREAM_AUTHORITY}^U"
    return f"PID|1||{patient}||^^^^^^U"


def _obr(report: ResultReport) -> str:
    fields = [""] * 26
    filler = f"{escape(report.message_id)}^{SENDING_APPLICATION}"  # OBR-3: our order number
    fields[:5] = "OBR", "1", "", filler, _coded(ECG_STUDY)
    fields[7], fields[8] = _ts(report.start), _ts(report.end)
    fields[22], fields[24], fields[25] = _ts(now()), "EC", "F"
    return "|".join(fields)


def _notes(report: ResultReport) -> list[str]:
    if report.kind == "alarm":
        label = report.labels[0].label if report.labels else "?"
        head = (
            f"alarm {label} switched {report.alarm_state} on stream {report.stream_id} "
            f"(segment {report.segment}); value: the smoothed probability of that window"
        )
    else:
        head = (
            f"record of stream {report.stream_id} (segment {report.segment}): "
            f"{report.windows} windows classified, {report.rejected} rejected; value: the "
            "highest raw probability; called (flag A): smoothed >= threshold in any window"
        )
    return [head, *report.notes]


def _observations(report: ResultReport, codes: CodeTable) -> list[str]:
    rows = []
    for r in report.labels:
        alarm = report.kind == "alarm" and r.smoothed is not None
        value = r.smoothed if alarm else r.probability
        code = f"{escape(r.label)}^Probability of {escape(r.label)}^{LOCAL_CODES}"
        flag = "A" if r.positive and r.finding else ""
        rows.append(("NM", code, "", f"{value:.4f}", "1^^UCUM", f"<{r.threshold:.4f}", flag))
    for i, label in enumerate(report.conclusions, 1):
        finding = f"FINDING^Model finding^{LOCAL_CODES}"
        coded = "^".join(map(_coded, codes.codings(label)))  # published, then the label
        rows.append(("CWE", finding, str(i), coded, "", "", "A"))
    model = report.model
    for key, text, value in (
        ("MODEL", "Model name", model.name),
        ("MODEL-SHA256", "SHA-256 of the served ONNX graph", model.sha256),
        ("MODEL-BACKEND", "Backend, device and precision", model.backend),
    ):
        rows.append(("ST", f"{key}^{text}^{LOCAL_CODES}", "", escape(value), "", "", ""))
    return [
        f"OBX|{i}|{kind}|{code}|{sub}|{value}|{units}|{ref}|{flag}|||F"
        for i, (kind, code, sub, value, units, ref, flag) in enumerate(rows, 1)
    ]
