"""The HL7 v2 channel against real protocol ends: every message parsed by ``hl7`` and
validated (strict) by ``hl7apy``; delivery through the real Outbox and Courier to the
``hl7`` library's MLLP server on loopback that ACKs, NAKs, answers late, loses ACKs and is
killed and restarted; hostile receivers on raw sockets; TLS with certificates made here; a
process SIGKILLed with a backlog."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from mrm_edge.runtime.outbox.codes import CodeTable
from mrm_edge.runtime.outbox.courier import Courier
from mrm_edge.runtime.outbox.hl7 import ACK_LIMIT, STREAM_AUTHORITY, Hl7Channel, Hl7NoAnswer
from mrm_edge.runtime.outbox.report import LabelResult, ModelIdentity, ResultReport, message_id
from mrm_edge.runtime.outbox.store import Message, Outbox

hl7 = pytest.importorskip("hl7", reason="pip install 'mrm-edge[hl7]'")
hl7apy_parser = pytest.importorskip("hl7apy.parser", reason="pip install 'mrm-edge[hl7]'")

from tests.runtime.outbox.mllp_listener import MllpListener  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
MODEL = ModelIdentity("mrm-net-ptbxl-superdiagnostic", "ab" * 32, "onnxruntime CPU fp32")
HOSTILE = "P|^~\\&\r\nMSH|^~\\&|evil\x0b\x1c\r"
T0 = datetime(2026, 12, 7, 15, 0, tzinfo=timezone.utc)


def a_report(
    stream_id: str, segment: int = 0, subject: str | None = None, kind: str = "record"
) -> ResultReport:
    labels = (
        LabelResult("NORM", 0.12, 0.10, 0.5, False, False),
        LabelResult("MI", 0.91, 0.73, 0.4, True, True),
        LabelResult("STTC", 0.35, 0.30, 0.45, False, True),
    )
    return ResultReport(
        kind,  # type: ignore[arg-type]
        message_id(MODEL, stream_id, segment, kind),
        stream_id, segment, subject, T0, T0 + timedelta(seconds=10),
        labels if kind == "record" else labels[1:2], ("MI",), MODEL,
        windows=5, rejected=1, alarm_state="on" if kind == "alarm" else None,
        notes=("lead V2 | noisy",),
    )  # fmt: skip


def parsed(body: bytes) -> hl7.Message:
    """``body`` parsed by ``hl7`` and validated by ``hl7apy`` (strict, v2.5.1 ORU_R01)."""
    text = body.decode("utf-8")
    from hl7apy.consts import VALIDATION_LEVEL

    message = hl7apy_parser.parse_message(
        text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True
    )
    assert message.validate()
    return hl7.parse(text)


def field(message: hl7.Message, segment: str, *where: int, n: int = 0) -> str:
    """The unescaped value at ``where`` (field, repetition, component) of the n-th segment."""
    value = message.segments(segment)[n]
    for i in where:
        value = value(i)
    return message.unescape(str(value))


def test_hostile_subjects_and_stream_ids_stay_inside_their_fields() -> None:
    channel = Hl7Channel("127.0.0.1", 2575)
    body = channel.compose(a_report(HOSTILE, subject=HOSTILE))
    message = parsed(body)
    assert b"\x0b" not in body and b"\x1c" not in body
    assert body.count(b"\r") == len(message)  # no segment broken or smuggled in
    assert [str(s(0)) for s in message][:4] == ["MSH", "PID", "OBR", "NTE"]
    assert field(message, "PID", 3, 1, 1) == HOSTILE
    assert field(message, "PID", 3, 1, 5) == "PI"  # a patient id the file gave

    message = parsed(channel.compose(a_report(HOSTILE)))  # no subject: the stream id
    assert field(message, "PID", 3, 1, 1) == HOSTILE
    assert field(message, "PID", 3, 1, 4) == STREAM_AUTHORITY
    assert field(message, "PID", 3, 1, 5) == "U"
    assert HOSTILE in field(message, "NTE", 3)
    assert field(message, "NTE", 3, n=1) == "lead V2 | noisy"

    huge = parsed(channel.compose(a_report("\r" * 10**6, subject="|" * 10**6)))
    assert field(huge, "PID", 3, 1, 1) == "|" * 66  # 199 characters once escaped
    assert len(str(huge)) < 5000


def test_the_message_says_what_the_report_says() -> None:
    report = a_report("tcp:10.0.0.5:4000/bed-3", subject="12345")
    message = parsed(Hl7Channel("h", 1, codes=CodeTable("ptbxl")).compose(report))
    assert field(message, "MSH", 10) == report.message_id  # the receiver's de-duplication key
    assert (field(message, "MSH", 3), str(message.segment("MSH")(9))) == (
        "MRM-EDGE", "ORU^R01^ORU_R01",
    )  # fmt: skip
    assert str(message.segment("OBR")(4)) == "11524-6^EKG study^LN"
    assert field(message, "OBR", 7) == "20261207150000.000+0000"
    assert field(message, "OBR", 8) == "20261207150010.000+0000"
    assert field(message, "OBR", 25) == "F"
    obx = {field(message, "OBX", 3, 1, 1, n=i): message.segments("OBX")[i] for i in range(7)}
    assert [str(obx["MI"](i)) for i in (2, 5, 7, 8)] == ["NM", "0.9100", "<0.4000", "A"]
    assert [str(obx["STTC"](i)) for i in (5, 7, 8)] == ["0.3500", "<0.4500", ""]
    assert str(obx["NORM"](8)) == ""  # NORM is not a finding: no abnormal flag
    assert str(obx["FINDING"](2)) == "CWE"  # the published code, then the model's label
    assert str(obx["FINDING"](5)) == "164865005^myocardial infarction^SCT^MI^MI^99MRM"
    assert field(message, "OBX", 5, n=5) == "ab" * 32  # MODEL-SHA256
    assert field(message, "OBX", 5, n=6) == MODEL.backend

    alarm = parsed(Hl7Channel("h", 1).compose(a_report("s", kind="alarm")))
    assert field(alarm, "OBX", 5) == "0.7300"  # the smoothed value that switched it on
    assert str(alarm.segments("OBX")[1](5)) == "MI^MI^99MRM"  # no code table: the label
    assert "alarm MI switched on" in field(alarm, "NTE", 3)


def wait_until(condition: Callable[[], bool], what: str, limit_s: float = 30.0) -> None:
    end = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < end, f"not within {limit_s} s: {what}"
        time.sleep(0.01)


@pytest.fixture
def listener() -> Iterator[MllpListener]:
    server = MllpListener().start()
    yield server
    server.close()


def courier_for(outbox: Outbox, channel: Hl7Channel, notices: list[str]) -> Courier:
    return Courier(
        outbox, channel, notices.append, backoff_first_s=0.05, backoff_max_s=0.2, poll_s=0.02
    )


def unique(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def test_every_message_arrives_once_in_order_through_naks_late_acks_and_a_restart(
    tmp_path: Path, listener: MllpListener
) -> None:
    channel = Hl7Channel("127.0.0.1", listener.port, timeout_s=0.3)
    outbox, notices = Outbox(tmp_path / "outbox.sqlite"), []
    reports = [a_report(f"bed-{i % 3}|^~\\&", segment=i, subject=HOSTILE) for i in range(40)]
    ids = [r.message_id for r in reports]
    refused = {ids[3]: "unknown patient", ids[25]: "no order"}
    listener.refuse.update(refused)
    courier = courier_for(outbox, channel, notices)
    courier.start()

    def put(rs: list[ResultReport]) -> None:
        for r in rs:
            assert outbox.put(channel.name, r.message_id, r.stream_id, channel.compose(r))

    def drained() -> None:
        wait_until(lambda: outbox.next_pending(channel.name) is None, "the outbox drained")

    put(reports[:10])
    drained()
    listener.late_acks, listener.delay_s = 1, 1.0  # beyond the timeout: sent again
    put(reports[10:11])
    drained()
    listener.lose_acks = 1  # received, then the connection dropped without an ACK
    put(reports[11:12])
    drained()
    listener.kill()
    put(reports[12:30])
    wait_until(lambda: outbox.next_pending(channel.name).attempts >= 2, "retried meanwhile")
    listener.start()
    put(reports[30:])
    drained()
    courier.stop(drain_s=5.0)

    arrived = listener.control_ids()
    assert unique(arrived) == ids  # every message, in order, once after de-duplication
    assert arrived.count(ids[10]) == arrived.count(ids[11]) == 2  # re-sent: same MSH-10
    assert all(arrived.count(i) == 1 for i in refused)  # a refusal is not retried
    kept = {m.message_id: m for m in Outbox(tmp_path / "outbox.sqlite").messages()}
    assert set(kept) == set(refused) and {m.state for m in kept.values()} == {"rejected"}
    assert kept[ids[3]].last_error == "AE: unknown patient; Application internal error"
    assert any("unreachable" in n for n in notices) and any("reachable again" in n for n in notices)
    assert sum("refused by the receiver" in n for n in notices) == 2
    for message in listener.received:
        assert field(parsed(str(message).encode()), "PID", 3, 1, 1) == HOSTILE


@contextmanager
def raw_receiver(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    """A hostile receiver: reads one MLLP block and then does ``answer`` on the socket."""
    server = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            data = b""
            while b"\x1c\r" not in data and (chunk := conn.recv(65536)):
                data += chunk
            answer(conn)
            done.wait(10)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        done.set()
        server.close()
        thread.join(10)


def ack_for(control_id: str, code: str = "AA") -> bytes:
    return f"\x0bMSH|^~\\&|R||||x||ACK|1|P|2.5.1\rMSA|{code}|{control_id}\r\x1c\r".encode()


def stored(report: ResultReport, channel: Hl7Channel) -> Message:
    body = channel.compose(report)
    return Message(1, channel.name, report.message_id, report.stream_id, 0.0, body, 0, "", "")


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (lambda c, mid: c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n"), "not an MLLP block"),
        (lambda c, mid: c.sendall(b"\x0bgarbage\x1c\r"), "not an HL7 message"),
        (lambda c, mid: c.sendall(ack_for("another-message")), "is for message"),
        (lambda c, mid: c.sendall(ack_for(mid, "ZZ")), "MSA-1"),
        (lambda c, mid: c.sendall(b"\x0b" + b"x" * (ACK_LIMIT + 10)), "exceeds"),
        (lambda c, mid: c.close(), "closed the connection"),
        (lambda c, mid: c.sendall(b"\x0bMSH|^~\\&|"), "no acknowledgement in time"),
    ],
    ids=["http", "garbage", "other-id", "unknown-code", "huge", "closed", "trickle"],
)
def test_an_answer_that_is_no_ack_is_no_answer(answer, error: str) -> None:
    report = a_report("s")
    with raw_receiver(lambda c: answer(c, report.message_id)) as port:
        channel = Hl7Channel("127.0.0.1", port, timeout_s=1.0)
        with pytest.raises((Hl7NoAnswer, TimeoutError), match=error):
            channel.send(stored(report, channel))
        channel.close()


def test_a_refusal_and_an_accept_in_enhanced_mode() -> None:
    report = a_report("s")
    for code, verdict in (("CA", None), ("CR", "CR: no reason given")):
        with raw_receiver(lambda c, code=code: c.sendall(ack_for(report.message_id, code))) as p:
            channel = Hl7Channel("127.0.0.1", p)
            assert channel.send(stored(report, channel)) == verdict
            channel.close()


def test_close_unblocks_a_send_waiting_on_a_silent_receiver() -> None:
    with raw_receiver(lambda c: None) as port:
        channel = Hl7Channel("127.0.0.1", port, timeout_s=120.0)
        outcome: list[BaseException] = []

        def send() -> None:
            try:
                channel.send(stored(a_report("s"), channel))
            except BaseException as e:
                outcome.append(e)

        sender = threading.Thread(target=send)
        sender.start()
        wait_until(lambda: channel._sock is not None, "connected")
        channel.close()
        sender.join(10)  # far below the 120 s timeout: close() woke it
        assert not sender.is_alive() and isinstance(outcome[0], (Hl7NoAnswer, OSError))


def test_tls_delivers_to_a_verified_receiver_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    from tests.runtime.sources.pki import OPENSSL, make_pki

    if OPENSSL is None:
        pytest.skip("the openssl command is needed to make test certificates")
    pki = make_pki(tmp_path, devices=())
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(pki.server.cert, pki.server.key)
    listener = MllpListener(tls=server_tls).start()
    try:
        report = a_report("bed-1")
        trusted = ssl.create_default_context(cafile=str(pki.ca))
        channel = Hl7Channel("127.0.0.1", listener.port, tls=trusted)
        assert channel.name == f"hl7s:127.0.0.1:{listener.port}"
        assert channel.send(stored(report, channel)) is None
        channel.close()
        assert listener.control_ids() == [report.message_id]

        stranger = ssl.create_default_context(cafile=str(pki.other_ca))
        channel = Hl7Channel("127.0.0.1", listener.port, tls=stranger)
        with pytest.raises(ssl.SSLCertVerificationError):
            channel.send(stored(report, channel))
        assert listener.control_ids() == [report.message_id]  # nothing sent unverified
    finally:
        listener.close()


_CHILD = """
import sys, time
from pathlib import Path
from mrm_edge.runtime.outbox.codes import CodeTable
from mrm_edge.runtime.outbox.courier import Courier
from mrm_edge.runtime.outbox.hl7 import Hl7Channel
from mrm_edge.runtime.outbox.store import Outbox
from tests.runtime.outbox.test_hl7 import a_report
outbox, channel = Outbox(Path(sys.argv[1])), Hl7Channel("127.0.0.1", int(sys.argv[2]))
for i in range(20):
    r = a_report("bed-1", segment=i)
    outbox.put(channel.name, r.message_id, r.stream_id, channel.compose(r))
Courier(outbox, channel, print).start()
print("stored", flush=True)
time.sleep(60)
"""


def test_a_backlog_left_by_a_killed_process_is_delivered_by_the_next(
    tmp_path: Path, listener: MllpListener
) -> None:
    path = tmp_path / "outbox.sqlite"
    listener.late_acks, listener.delay_s = 1000, 0.1  # killed with most of it undelivered
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), str(listener.port)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout.readline().strip() == "stored"
        wait_until(lambda: len(listener.received) >= 3, "the child began delivering")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    listener.late_acks = 0
    outbox, channel, notices = Outbox(path), Hl7Channel("127.0.0.1", listener.port), []
    assert 0 < len(outbox.messages()) < 20
    courier = courier_for(outbox, channel, notices)
    courier.start()
    wait_until(lambda: outbox.next_pending(channel.name) is None, "the backlog delivered")
    courier.stop(drain_s=5.0)
    assert unique(listener.control_ids()) == [
        a_report("bed-1", segment=i).message_id for i in range(20)
    ]
