"""The tcp source over mutual TLS, on loopback with certificates made at test time: a good
device streams and its windows equal offline inference, while devices with a certificate
from another CA, an expired one or none are refused at the handshake, each a logged
``source`` event with OpenSSL's reason, and the good device's windows are complete."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
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
from mrm_edge.runtime.sources.tls import server_context

from mrm_edge.data.signal import resample
from mrm_edge.records import read_recording
from tests.runtime.sources import collect
from tests.runtime.sources.pki import Pki, device_context, openssl_subject, tls_connect

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "models" / "mrm-net-ptbxl-superdiagnostic"
FS, HOP_S = 500, 5.0
X = np.random.default_rng(4).normal(0, 0.5, size=(300, 12)).astype(np.float32)

REFUSALS = {  # device -> what the monitor logs about its handshake
    "other-ca": "TLS handshake refused: certificate verify failed: unable to get local issuer",
    "expired": "TLS handshake refused: certificate verify failed: certificate has expired",
    "no-cert": "TLS handshake refused: peer did not return a certificate",
}


def bad_device(pki: Pki, case: str) -> ssl.SSLContext:
    files = {"other-ca": pki.rogue, "expired": pki.expired, "no-cert": None}[case]
    return device_context(pki.ca, files)


def try_bad_device(port: int, ctx: ssl.SSLContext, sid: str) -> bool:
    """Connect and try to stream; True when the monitor hung up on it (TLS 1.3 reports a
    refused client certificate after the client's side of the handshake is done)."""
    try:
        with tls_connect(port, ctx) as s:
            enc = FrameEncoder(sid, FS)
            s.sendall(enc.hello() + enc.data(X))
            return s.recv(16) == b""
    except (ssl.SSLError, ConnectionError):
        return True


def test_refused_certificates_at_the_source(pki: Pki) -> None:
    with TcpSource(tls=server_context(pki.server_files()), stall_timeout_s=None) as src:
        good = tls_connect(src.port, device_context(pki.ca, pki.devices["device-a"]))
        enc = FrameEncoder("good", FS)
        good.sendall(enc.hello() + enc.data(X[:100]))
        refused = {case: try_bad_device(src.port, bad_device(pki, case), case) for case in REFUSALS}
        good.sendall(enc.data(X[100:]) + enc.end())
        got = collect(src, n_ends=1)
        good.close()
        owner = src.sessions.owners._owner.get("good")
    assert refused == dict.fromkeys(REFUSALS, True)
    assert set(got.ends) == {"good"}  # the refused never opened a stream
    np.testing.assert_array_equal(got.signal("good"), X)
    assert got.ends["good"] == ["ended by device"]
    reasons = sorted(p.reason for p in got.problems)
    assert [p.kind for p in got.problems] == ["tls"] * 3
    for case, why in REFUSALS.items():
        assert sum(r.startswith(why) for r in reasons) == 1, (case, reasons)
    assert all(p.where.startswith("tls 127.0.0.1:") for p in got.problems)
    # The identity: the certificate's subject, exactly as openssl prints it in RFC 2253.
    assert owner == openssl_subject(pki.devices["device-a"].cert) == pki.subject("device-a")


def test_a_plain_text_client_on_a_tls_port_is_refused(pki: Pki) -> None:
    with TcpSource(tls=server_context(pki.server_files())) as src:
        with socket.create_connection(("127.0.0.1", src.port), timeout=5) as plain:
            plain.sendall(FrameEncoder("sneaky", FS).hello() + FrameEncoder("x", FS).data(X))
            with contextlib.suppress(ConnectionResetError):
                plain.recv(64)  # an alert, then the hang-up
        got = collect(src, timeout=1.0)
    assert not got.chunks and not got.ends
    [problem] = got.problems
    assert problem.kind == "tls" and problem.reason.startswith("TLS handshake refused: ")


# ------------------------------------------------------------------ through the Monitor
@pytest.mark.realdata
def test_mtls_device_windows_equal_offline_inference_beside_refused_devices(
    pki: Pki, ptbxl_root: Path, tmp_path: Path
) -> None:
    x = np.concatenate(
        [read_recording(ptbxl_root / f"records500/00000/0000{i}_hr.hea").signal.T for i in (1, 2)]
    ).astype(np.float32)  # 20 s: three windows at hop 5 s
    model = DeployedModel.load(SHIPPED)
    log = tmp_path / "events.jsonl"
    backend = OnnxRuntimeBackend(model.onnx["fp32"].path, providers=["CPUExecutionProvider"])
    config = MonitorConfig(hop_s=HOP_S, max_delay_ms=20)
    with (
        backend,
        TcpSource(tls=server_context(pki.server_files())) as src,
        open_monitor(model, src, config, backend, sinks=[JsonlSink(log)]) as mon,
    ):
        result: dict = {}
        runner = threading.Thread(target=lambda: result.update(s=mon.run()))
        runner.start()
        good = tls_connect(src.port, device_context(pki.ca, pki.devices["device-a"]))
        enc = FrameEncoder("bed-1", FS)
        good.sendall(enc.hello())
        for a in range(0, len(x), FS // 5):  # 0.2 s frames, with the bad devices in between
            good.sendall(enc.data(x[a : a + FS // 5]))
            if a == 5 * FS:
                for case in REFUSALS:
                    assert try_bad_device(src.port, bad_device(pki, case), f"bed-{case}")
        good.sendall(enc.end())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lines = [json.loads(s) for s in log.read_text().splitlines()]
            if any(d["type"] == "stream" and d["event"] == "end" for d in lines):
                break
            time.sleep(0.1)
        mon.stop("test done")
        runner.join(timeout=60)
        good.close()
        expect_all = backend.infer  # bound while the backend is active
        offline = resample(x.T, FS, model.card.sampling_rate)
        win, hop = model.card.window_samples, round(HOP_S * model.card.sampling_rate)
        n = (offline.shape[1] - win) // hop + 1
        cut = np.stack([offline[:, k * hop : k * hop + win] for k in range(n)])
        expect = expect_all(np.ascontiguousarray(cut, dtype=np.float32))
    summary = result["s"]
    assert summary.ok and summary.dropped == 0
    lines = [json.loads(s) for s in log.read_text().splitlines()]
    windows = sorted((d for d in lines if d["type"] == "window"), key=lambda d: d["start"])
    assert [d["stream"] for d in windows] == ["bed-1"] * n == ["bed-1"] * 3
    assert [d["start"] for d in windows] == [k * hop for k in range(n)]
    assert all(d["status"] == "ok" for d in windows)
    p = np.array([[d["probabilities"][lab] for lab in model.card.labels] for d in windows])
    np.testing.assert_allclose(p, expect, atol=1e-5)
    sources = [d for d in lines if d["type"] == "source"]
    assert sorted(d["kind"] for d in sources) == ["tls"] * 3
    assert summary.source_problems_by_kind == {"tls": 3}
    [start] = [d for d in lines if d["type"] == "start"]
    assert start["source"].startswith("tcp (mutual TLS): listening on 127.0.0.1:")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_a_device_offering_only_tls_1_1_is_refused(pki: Pki) -> None:
    old = device_context(pki.ca, pki.devices["device-a"])
    old.minimum_version, old.maximum_version = ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")  # let this client offer it at all
    with TcpSource(tls=server_context(pki.server_files())) as src:
        with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION"):
            tls_connect(src.port, old)
        got = collect(src, timeout=1.0)
    [problem] = got.problems
    assert problem.kind == "tls"
    assert problem.reason == "TLS handshake refused: unsupported protocol; connection closed"
