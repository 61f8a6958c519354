"""``mrm-edge monitor --sink hl7:... --sink fhir:...`` end to end, through real subprocesses
and real receivers on loopback (the ``hl7`` library's MLLP server, a FHIR endpoint that
validates every request with ``fhir.resources``): every classified record reaches both
exactly once after de-duplication, through a receiver that is down when the monitor runs
and comes back for the next run, and through a monitor SIGKILLed with a backlog."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mrm_edge.runtime.outbox.store import Outbox

pytest.importorskip("hl7", reason="the hl7 extra: pip install 'mrm-edge[hl7]'")
pytest.importorskip("fhir.resources", reason="the fhir extra: pip install 'mrm-edge[fhir]'")

from tests.runtime.outbox.fhir_server import FhirServer
from tests.runtime.outbox.mllp_listener import MllpListener

MRM_EDGE = str(Path(sys.executable).with_name("mrm-edge"))
RECORDS = ["00001_lr", "00002_lr", "00003_lr", "00004_lr", "00005_lr"]


@pytest.fixture
def records(ptbxl_root: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "records"
    folder.mkdir()
    for name in RECORDS:
        for suffix in (".hea", ".dat"):
            shutil.copy(ptbxl_root / "records100" / "00000" / f"{name}{suffix}", folder)
    return folder


def monitor(records: Path, outbox: Path, *sinks: str, wait: bool = True) -> subprocess.Popen:
    cmd = [MRM_EDGE, "monitor", "--source", f"wfdb:{records}", "--speed", "max", "--no-ui",
           "--backend", "onnxruntime", "--outbox", str(outbox)]  # fmt: skip
    for spec in sinks:
        cmd += ["--sink", spec]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if wait:
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, out
        assert "Traceback" not in out, out
    return proc


def wait_for(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_every_record_reaches_hl7_and_fhir_once_through_a_receiver_outage(
    records: Path, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox.sqlite"
    listener = MllpListener()  # its port reserved, not listening yet: the receiver is down
    with FhirServer(faults=["503", "500", "slow"], stall_s=12.0) as fhir:
        sinks = (f"hl7:127.0.0.1:{listener.port}", f"fhir:{fhir.url}")
        monitor(records, outbox, *sinks)  # classifies all; HL7 unreachable, FHIR failing
        backlog = [m.message_id for m in Outbox(outbox).messages(sinks[0])]
        assert len(backlog) == len(RECORDS)
        listener.start()  # the receiver is back: the next run delivers the backlog first
        try:
            monitor(records, outbox, *sinks)  # the same records again: the same message ids
            ids = listener.control_ids()
            assert ids[: len(RECORDS)] == backlog  # the backlog first, in the order stored
            assert sorted(ids[len(RECORDS) :]) == sorted(backlog)  # then duplicates: same ids
            wait_for(lambda: len(fhir.resources("DiagnosticReport")) == len(RECORDS))
        finally:
            listener.close()
        assert Outbox(outbox).messages() == []  # everything acknowledged, nothing refused
        reports = fhir.resources("DiagnosticReport")
        assert len(reports) == len(RECORDS) and not fhir.invalid
        assert len({r["identifier"][0]["value"] for r in reports}) == len(RECORDS)
        assert len(fhir.resources("Observation")) == 5 * len(RECORDS)  # one per label


def test_a_monitor_killed_with_a_backlog_delivers_it_on_the_next_start(
    records: Path, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox.sqlite"
    listener = MllpListener()  # down while the first monitor runs
    sink = f"hl7:127.0.0.1:{listener.port}"
    first = monitor(records, outbox, sink, wait=False)
    try:
        wait_for(lambda: outbox.exists() and len(Outbox(outbox).messages()) == len(RECORDS))
        os.kill(first.pid, signal.SIGKILL)
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    backlog = [m.message_id for m in Outbox(outbox).messages()]
    listener.start()
    try:
        monitor(records, outbox, sink)
        ids = listener.control_ids()
        assert ids[: len(RECORDS)] == backlog and sorted(ids[len(RECORDS) :]) == sorted(backlog)
        assert Outbox(outbox).messages() == []
        for message in listener.received:  # what a receiver gets parses as ORU^R01
            assert str(message.segment("MSH")(9)) == "ORU^R01^ORU_R01"
    finally:
        listener.close()
