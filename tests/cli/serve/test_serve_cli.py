"""``mrm-edge serve`` as a real process: loopback, the ports asked for, a client served,
SIGTERM stops the server with it; a bad model directory is a one-line error."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.triton_fixtures import free_ports, need_triton

MRM_EDGE = str(Path(sys.executable).parent / "mrm-edge")


def _wait_for(proc: subprocess.Popen, log: Path, text: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = log.read_text() if log.exists() else ""
        if text in out:
            return out
        assert proc.poll() is None, out
        time.sleep(0.2)
    raise AssertionError(f"no {text!r} within {timeout_s} s:\n{log.read_text()}")


def test_serve_runs_on_loopback_and_stops_on_sigterm(tiny_model: Path, tmp_path: Path) -> None:
    need_triton()
    import tritonclient.grpc as grpcclient

    ports = free_ports()
    log = tmp_path / "serve.log"
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [MRM_EDGE, "serve", "--model", str(tiny_model), "--http-port", str(ports.http),
             "--grpc-port", str(ports.grpc), "--metrics-port", str(ports.metrics),
             "--repo", str(tmp_path / "repo"), "--threads", "1"],
            stdout=f, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        out = _wait_for(proc, log, "tritonserver ready", 90)
        assert f"--backend triton:127.0.0.1:{ports.grpc}" in " ".join(out.split())
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{ports.grpc}")
        assert client.is_server_ready()
        x = np.zeros((2, 12, 1000), np.float32)
        tensor = grpcclient.InferInput("ecg", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        p = client.infer("tiny-test-model-cpu-fp32", [tensor]).as_numpy("probabilities")
        assert p.shape == (2, 5)
        # Metrics on their own port, bound to loopback like the rest.
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{ports.metrics}/metrics", timeout=5) as r:
            assert b"nv_inference_request_success" in r.read()
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "SIGTERM: stopping tritonserver" in log.read_text()
    # The server went with it: nothing answers on its port any more.
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{ports.grpc}")
    with pytest.raises(grpcclient.InferenceServerException, match=r"UNAVAILABLE|Deadline"):
        client.is_server_ready(client_timeout=2)
    # The repository asked for is kept, with the configs the server loaded.
    assert (tmp_path / "repo" / "tiny-test-model-cpu-fp32" / "config.pbtxt").is_file()


def test_serve_without_an_exported_model_is_one_line(tmp_path: Path) -> None:
    need_triton()
    r = subprocess.run(
        [MRM_EDGE, "serve", "--model", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 1
    assert r.stderr.strip().startswith("Error: ") and len(r.stderr.strip().splitlines()) == 1
