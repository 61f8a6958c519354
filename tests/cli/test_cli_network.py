"""`mrm-edge monitor` and `mrm-edge send` over mutual TLS as a user runs them: real
processes, certificates made at test time. A good device's windows equal offline
inference; a rogue device (another CA) fails with one line on its side and a `source` line
in the monitor's log; each problem with our own files is one line naming the file; the
plain-text bind off loopback is refused, and its opt-out is announced and logged."""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.runtime.backends import OnnxRuntimeBackend
from mrm_edge.runtime.model import DeployedModel

from mrm_edge.data.signal import resample
from mrm_edge.records import read_recording
from tests.eventlog import read_events, wait_until
from tests.netns import run_in_netns
from tests.runtime.sources.pki import Pki

MRM_EDGE = str(Path(sys.executable).parent / "mrm-edge")
SHIPPED = Path(__file__).resolve().parents[2] / "models/mrm-net-ptbxl-superdiagnostic"
HOP_S = 5.0


def _send(port: int, files, record: Path, sid: str, *extra: str) -> subprocess.CompletedProcess:
    tls = ["--tls-cert", files.cert, "--tls-key", files.key, "--tls-ca", files.ca]
    cmd = [MRM_EDGE, "send", "--port", str(port), "--speed", "max", "--stream-id", sid,
           *map(str, tls), *extra, str(record)]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def tls_run(pki: Pki, ptbxl_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("cli-tls")
    events, err = d / "events.jsonl", d / "stderr.txt"
    cmd = [MRM_EDGE, "monitor", "--source", "tcp:127.0.0.1:0", "--no-ui", "--events", events,
           "--backend", "onnxruntime", "--precision", "fp32", "--hop", str(HOP_S),
           "--tls-cert", pki.server.cert, "--tls-key", pki.server.key,
           "--tls-client-ca", pki.ca, "--max-delay", "20"]  # fmt: skip
    record = ptbxl_root / "records500/00000/00001_hr.hea"
    with err.open("w") as fe:
        mon = subprocess.Popen(list(map(str, cmd)), stdout=subprocess.DEVNULL, stderr=fe)
        try:
            wait_until(lambda: any(e["type"] == "start" for e in read_events(events)), 120, "start")
            [start] = [e for e in read_events(events) if e["type"] == "start"]
            port = int(start["source"].rsplit(":", 1)[1])
            good = _send(port, pki.devices["device-a"], record, "bed-1")
            rogue = _send(port, pki.rogue, record, "bed-2")
            wrong_ca = _send(port, replace(pki.devices["device-b"], ca=pki.other_ca), record, "x")
            wrong_name = _send(port, pki.devices["device-b"], record, "y",
                               "--tls-server-name", "monitor.example")  # fmt: skip
            expired = _send(port, pki.expired, record, "z")

            def ended() -> bool:
                return any(e.get("event") == "end" for e in read_events(events))

            wait_until(ended, 60, "the good stream to end")
        finally:
            mon.send_signal(signal.SIGINT)
            mon.wait(timeout=60)
    return {
        "rc": mon.returncode, "events": read_events(events), "stderr": err.read_text(),
        "good": good, "rogue": rogue, "wrong_ca": wrong_ca, "wrong_name": wrong_name,
        "expired": expired, "record": record, "pki": pki,
    }  # fmt: skip


@pytest.mark.realdata
def test_good_device_over_mutual_tls_equals_offline_inference(tls_run: dict) -> None:
    assert tls_run["rc"] == 0, tls_run["stderr"]
    assert tls_run["good"].returncode == 0, tls_run["good"].stderr
    events = tls_run["events"]
    rec = read_recording(tls_run["record"])
    model = DeployedModel.load(SHIPPED)
    offline = resample(rec.signal, rec.sampling_rate, model.card.sampling_rate)
    win, hop = model.card.window_samples, round(HOP_S * model.card.sampling_rate)
    n = (offline.shape[1] - win) // hop + 1
    got = sorted((e for e in events if e["type"] == "window"), key=lambda e: e["start"])
    assert [(e["stream"], e["start"]) for e in got] == [("bed-1", k * hop) for k in range(n)]
    cut = np.stack([offline[:, k * hop : k * hop + win] for k in range(n)])
    with OnnxRuntimeBackend(model.onnx["fp32"].path, providers=["CPUExecutionProvider"]) as be:
        expect = be.infer(np.ascontiguousarray(cut, dtype=np.float32))
    p = np.array([[e["probabilities"][lab] for lab in model.card.labels] for e in got])
    np.testing.assert_allclose(p, expect, atol=1e-5)
    [start] = [e for e in events if e["type"] == "start"]
    assert start["source"].startswith("tcp (mutual TLS): listening on 127.0.0.1:")


@pytest.mark.realdata
def test_a_rogue_device_fails_on_both_sides_in_one_line(tls_run: dict) -> None:
    rogue = tls_run["rogue"]
    assert rogue.returncode == 1
    [line] = [ln for ln in rogue.stderr.splitlines() if "bed-2" in ln]
    assert "refused this device's certificate" in line, rogue.stderr
    assert str(tls_run["pki"].rogue.cert) in line
    sources = [e for e in tls_run["events"] if e["type"] == "source"]
    refused = [e for e in sources if "unable to get local issuer certificate" in e["reason"]]
    assert len(refused) == 1 and refused[0]["kind"] == "tls"
    [summary] = [e for e in tls_run["events"] if e["type"] == "summary"]
    assert summary["source_problems_by_kind"]["tls"] >= 1
    assert all(e["stream"] == "bed-1" for e in tls_run["events"] if e["type"] == "window")


@pytest.mark.realdata
def test_the_device_checks_the_monitor(tls_run: dict) -> None:
    wrong_ca, wrong_name = tls_run["wrong_ca"], tls_run["wrong_name"]
    assert wrong_ca.returncode == 1 and wrong_name.returncode == 1
    # OpenSSL's words: the monitor sends its CA along, which our other CA does not sign.
    assert "the monitor's certificate is refused: self-signed certificate in certificate chain" in (
        wrong_ca.stderr
    )
    assert f"(checked against {tls_run['pki'].other_ca})" in wrong_ca.stderr
    assert "Hostname mismatch, certificate is not valid for 'monitor.example'" in wrong_name.stderr


@pytest.mark.realdata
def test_an_expired_device_certificate_is_refused_before_connecting(tls_run: dict) -> None:
    expired = tls_run["expired"]
    assert expired.returncode == 2
    assert expired.stderr.strip().splitlines() == [
        f"mrm-edge send: error: --tls-cert {tls_run['pki'].expired.cert}: expired on "
        "2020-02-01 00:00 UTC"
    ]


@pytest.mark.parametrize(
    "case, expect",
    [
        ("expired", "--tls-cert {expired_cert}: expired on 2020-02-01 00:00 UTC"),
        ("not a cert", "--tls-cert {junk}: not a certificate"),
        ("wrong key", "--tls-key {a_key}: does not match the certificate in {server_cert}"),
        ("missing ca", "--tls-client-ca {missing}: no such file"),
        ("half", "TLS needs all of --tls-cert, --tls-key and --tls-client-ca"),
    ],
)
def test_monitor_refuses_bad_own_files_in_one_line(pki: Pki, case: str, expect: str) -> None:
    s, a = pki.server, pki.devices["device-a"]
    files = {
        "expired": [pki.expired.cert, pki.expired.key, pki.ca],
        "not a cert": [pki.not_a_cert, s.key, pki.ca],
        "wrong key": [s.cert, a.key, pki.ca],
        "missing ca": [s.cert, s.key, pki.dir / "missing.pem"],
        "half": [s.cert, None, None],
    }[case]
    args = []
    for opt, f in zip(["--tls-cert", "--tls-key", "--tls-client-ca"], files, strict=True):
        args += [opt, str(f)] if f is not None else []
    cmd = [MRM_EDGE, "monitor", "--source", "tcp:127.0.0.1:0", "--no-ui", "--duration", "1", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    message = expect.format(expired_cert=pki.expired.cert, junk=pki.not_a_cert, a_key=a.key,
                            server_cert=s.cert, missing=pki.dir / "missing.pem")  # fmt: skip
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {message}"), r.stderr


def test_plain_text_off_loopback_is_refused_and_the_opt_out_is_loud(tmp_path: Path) -> None:
    r = subprocess.run([MRM_EDGE, "monitor", "--source", "tcp:0.0.0.0:0", "--no-ui"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 1
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("Error: tcp 0.0.0.0:0: refusing to listen in plain text")
    events = tmp_path / "events.jsonl"
    cmd = [MRM_EDGE, "monitor", "--source", "tcp:0.0.0.0:0", "--no-ui", "--duration", "1",
           "--insecure-plaintext-network", "--events", str(events)]  # fmt: skip
    r = run_in_netns(cmd)  # the wildcard listens only in a namespace of its own
    assert r.returncode == 0, r.stderr
    assert "WARNING --insecure-plaintext-network" in r.stderr
    logged = [e for e in read_events(events) if e["type"] == "source"]
    assert [e["kind"] for e in logged] == ["insecure"]
    [start] = [e for e in read_events(events) if e["type"] == "start"]
    assert start["source"].startswith("tcp (INSECURE plain text): listening on 0.0.0.0:")


@pytest.mark.parametrize("option", ["--tls-cert", "--allow-list"])
def test_network_options_with_another_source_are_refused(tmp_path: Path, option: str) -> None:
    """Ignoring them would let a user believe a stream is protected when it is not."""
    cmd = [MRM_EDGE, "monitor", "--no-ui", "--duration", "1", option, str(tmp_path / "x.pem")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert f"{option} applies to the tcp source only" in r.stderr, r.stderr
