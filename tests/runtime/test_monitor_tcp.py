"""A real TCP session: a sender subprocess streams real records over loopback to the
monitor, and every window's probabilities equal offline inference on the same window. Then
the `mrm-edge monitor` command itself, with misbehaving devices beside a good one."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.runtime.app import open_monitor
from mrm_edge.runtime.backends import OnnxRuntimeBackend
from mrm_edge.runtime.config import MonitorConfig
from mrm_edge.runtime.model import DeployedModel
from mrm_edge.runtime.sinks.jsonl import JsonlSink
from mrm_edge.runtime.sources.framing import FrameEncoder
from mrm_edge.runtime.sources.tcp import TcpSource

from mrm_edge.data.signal import resample
from mrm_edge.records import read_recording
from tests.eventlog import read_events, wait_until
from tests.runtime.sources.test_tcp_faults import BAD_INPUT, bad_tail

WINDOW, HOP, RATE = 1000, 100, 100


def test_sender_subprocess_to_monitor_over_loopback(
    tiny_onnx_model: Path, ptbxl_root: Path, cpsc_root: Path, tmp_path: Path
) -> None:
    records = [ptbxl_root / "records500/00000/00001_hr.hea", cpsc_root / "A1988.mat"]
    model = DeployedModel.load(tiny_onnx_model)
    log = tmp_path / "events.jsonl"
    backend = OnnxRuntimeBackend(model.onnx["fp32"].path, providers=["CPUExecutionProvider"])
    with (
        backend,
        TcpSource(host="127.0.0.1", port=0) as source,
        open_monitor(
            model, source, MonitorConfig(hop_s=1.0), backend, sinks=[JsonlSink(log)]
        ) as mon,
    ):
        result: dict = {}
        runner = threading.Thread(target=lambda: result.update(summary=mon.run()))
        runner.start()
        sender = subprocess.run(
            [
                sys.executable,
                "-m",
                "mrm_edge.cli",
                "send",
                "--host",
                "127.0.0.1",
                "--port",
                str(source.port),
                "--speed",
                "max",
                "-q",
                *map(str, records),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sender.returncode == 0, sender.stderr
        # Both devices said END; wait until the monitor has seen both streams end.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lines = [json.loads(s) for s in log.read_text().splitlines()] if log.exists() else []
            ended = {d["stream"] for d in lines if d["type"] == "stream" and d["event"] == "end"}
            if ended == {"00001_hr", "A1988"}:
                break
            time.sleep(0.2)
        mon.stop("test done")
        runner.join(timeout=60)
        assert not runner.is_alive()
        summary = result["summary"]
        assert summary.dropped == 0
        lines = [json.loads(s) for s in log.read_text().splitlines()]
        windows = [d for d in lines if d["type"] == "window"]
        for path in records:
            rec = read_recording(path)
            offline = resample(rec.signal, rec.sampling_rate, RATE)  # [12, n] at 100 Hz
            n = (offline.shape[1] - WINDOW) // HOP + 1
            got = sorted((d for d in windows if d["stream"] == rec.name), key=lambda d: d["start"])
            assert [d["start"] for d in got] == [k * HOP for k in range(n)], rec.name
            cut = np.stack([offline[:, k * HOP : k * HOP + WINDOW] for k in range(n)])
            expect = backend.infer(np.ascontiguousarray(cut, dtype=np.float32))
            ok = [d for d in got if d["status"] == "ok"]
            assert len(ok) >= n // 2  # A1988 has a real lead-off in V6: those windows reject
            for d in ok:
                k = d["start"] // HOP
                p = np.array([d["probabilities"][lab] for lab in model.card.labels])
                np.testing.assert_allclose(p, expect[k], atol=1e-5, err_msg=f"{rec.name}[{k}]")


# ------------------------------------------------------------------ the CLI, bad devices
# One real `mrm-edge monitor` process listens on a free port; a raw socket per case
# misbehaves after 15 s of good data, while `mrm-edge send` streams a real record beside
# them. Then each case is checked in the event log and on stderr.
MRM_EDGE = Path(sys.executable).parent / "mrm-edge"
FS, CUT_S, HOP_S = 500, 15, 5.0
CLI_CASES = [*BAD_INPUT, "garbage-first"]  # garbage-first: not MRME from its first byte


@pytest.fixture(scope="module")
def cli_faults(ptbxl_root: Path, cpsc_root: Path, tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("cli-faults")
    events, out, err = d / "events.jsonl", d / "stdout.txt", d / "stderr.txt"
    cmd = [MRM_EDGE, "monitor", "--source", "tcp:127.0.0.1:0", "--no-ui", "--events", events,
           "--stall-timeout", "1", "--backend", "onnxruntime", "--precision", "fp32",
           "--hop", str(HOP_S), "--max-delay", "20"]  # fmt: skip
    x = np.concatenate(
        [read_recording(ptbxl_root / f"records500/00000/0000{i}_hr.hea").signal.T for i in (1, 2)]
    ).astype(np.float32)
    good_rec = cpsc_root / "A1986.mat"
    socks: dict[str, socket.socket] = {}
    peers: dict[str, int] = {}  # case -> the client's port, as the monitor names it
    with out.open("w") as fo, err.open("w") as fe:
        mon = subprocess.Popen(cmd, stdout=fo, stderr=fe)
        try:
            wait_until(lambda: any(e["type"] == "start" for e in read_events(events)), 120, "start")
            [start] = [e for e in read_events(events) if e["type"] == "start"]
            port = int(start["source"].rsplit(":", 1)[1])
            for case in CLI_CASES:
                s = socks[case] = socket.create_connection(("127.0.0.1", port), timeout=10)
                peers[case] = s.getsockname()[1]
                if case == "garbage-first":
                    s.sendall(b"GET / HTTP/1.1\r\nHost: monitor\r\n\r\n")
                    continue
                enc = FrameEncoder(case, FS)
                s.sendall(
                    enc.hello() + enc.data(x[: CUT_S * FS]) + bad_tail(case, enc, x[CUT_S * FS :])
                )
                if case == "half-frame-disconnect":
                    s.close()
            send_cmd = [MRM_EDGE, "send", "--port", str(port), "--speed", "max",
                        "--stream-id", "good", str(good_rec)]  # fmt: skip
            send = subprocess.run(send_cmd, capture_output=True, text=True, timeout=120)
            assert send.returncode == 0, send.stderr

            def ended() -> set[str]:
                return {e["stream"] for e in read_events(events) if e.get("event") == "end"}

            want = {"good", *BAD_INPUT}
            wait_until(lambda: want <= ended(), 120, f"ends of {want}")
            wait_until(
                lambda: err.read_text().count("\n") >= 9, 30, "a problem line per bad device"
            )
        finally:
            mon.send_signal(signal.SIGINT)
            try:
                mon.wait(timeout=60)
            finally:
                if mon.poll() is None:
                    mon.kill()
                for s in socks.values():
                    s.close()
    return {
        "rc": mon.returncode,
        "events": read_events(events),
        "stderr": err.read_text(),
        "stdout": out.read_text(),
        "x": x,
        "good": read_recording(good_rec).signal.T.astype(np.float32),
        "peers": peers,
    }


@pytest.fixture(scope="module")
def shipped_backend():
    model = DeployedModel.load(
        Path(__file__).resolve().parents[2] / "models/mrm-net-ptbxl-superdiagnostic"
    )
    be = OnnxRuntimeBackend(model.onnx["fp32"].path, providers=["CPUExecutionProvider"])
    with be:
        yield model, be


def _check_windows(events: list[dict], sid: str, x: np.ndarray, model, backend) -> None:
    """The stream's windows are those of offline inference on ``x``, all classified."""
    offline = resample(x.T, FS, RATE)
    hop = round(HOP_S * RATE)
    n = (offline.shape[1] - WINDOW) // hop + 1
    got = sorted((e for e in events if e["type"] == "window" and e["stream"] == sid),
                 key=lambda e: e["start"])  # fmt: skip
    assert [e["start"] for e in got] == [k * hop for k in range(n)], sid
    assert [e["status"] for e in got] == ["ok"] * n, [e.get("reason") for e in got]
    cut = np.stack([offline[:, k * hop : k * hop + WINDOW] for k in range(n)])
    expect = backend.infer(np.ascontiguousarray(cut, dtype=np.float32))
    p = np.array([[e["probabilities"][lab] for lab in model.card.labels] for e in got])
    np.testing.assert_allclose(p, expect, atol=1e-5, err_msg=sid)


@pytest.mark.realdata
def test_cli_monitor_survives_bad_devices_and_classifies_the_good_one(
    cli_faults: dict, shipped_backend
) -> None:
    model, backend = shipped_backend
    assert cli_faults["rc"] == 0, cli_faults["stderr"]
    assert "Traceback" not in cli_faults["stderr"] + cli_faults["stdout"]
    events = cli_faults["events"]
    [summary] = [e for e in events if e["type"] == "summary"]
    assert summary["dropped"] == 0 and summary["errors"] == []
    windows = [e for e in events if e["type"] == "window"]
    assert summary["windows"] == len(windows)  # every window has exactly one result line
    _check_windows(events, "good", cli_faults["good"], model, backend)
    ends = {e["stream"]: e["detail"] for e in events if e.get("event") == "end"}
    assert ends["good"] == "ended by device"


@pytest.mark.realdata
@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_bad_device_gets_one_line_and_keeps_its_earlier_windows(
    case: str, cli_faults: dict, shipped_backend
) -> None:
    events, stderr = cli_faults["events"], cli_faults["stderr"]
    lines = [ln for ln in stderr.splitlines() if f"stream '{case}'" in ln]
    ends = {e["stream"]: e["detail"] for e in events if e.get("event") == "end"}
    if case == "garbage-first":  # no stream ever opened: a stderr line and a `source` line
        assert case not in ends
        bad = [ln for ln in stderr.splitlines() if "bad magic b'GET '" in ln]
        assert len(bad) == 1 and bad[0].startswith("tcp 127.0.0.1:"), stderr
        assert bad[0].endswith("expected b'MRME' (at byte 0); connection closed")
        logged = [e for e in events if e["type"] == "source" and "b'GET '" in e["reason"]]
        assert len(logged) == 1 and bad[0] == f"{logged[0]['where']}: {logged[0]['reason']}"
        summary = next(e for e in events if e["type"] == "summary")
        assert summary["source_problems"] >= 1
        return
    _, expected = BAD_INPUT[case]
    if case.startswith("bad-"):  # a bad HELLO after a clean first session on that connection
        assert ends[case] == "ended by device"
        peer = f"tcp 127.0.0.1:{cli_faults['peers'][case]}: protocol error: "
        [line] = [ln for ln in stderr.splitlines() if ln.startswith(peer)]
        assert expected in line and line.endswith("; connection closed"), line
    else:
        assert ends[case].startswith(expected), ends[case]
        assert len(lines) == 1 and expected in lines[0], stderr
    model, backend = shipped_backend
    _check_windows(events, case, cli_faults["x"][: CUT_S * FS], model, backend)
