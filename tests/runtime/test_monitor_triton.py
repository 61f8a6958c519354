"""``mrm-edge monitor --backend triton:HOST:PORT`` as real processes against a real
tritonserver: two front-ends sharing one server; the server killed mid-run and restarted
(fall back, none lost, switch back); the chain's reconnect on its own; a wrong model refused.

The monitors run the tiny model (tests/triton_fixtures.py) so that a CPU shared with other
work keeps up at 10x real time."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from mrm_edge.export.triton_repo import write_triton_repo
from mrm_edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
from mrm_edge.runtime.backends.triton import TritonBackend, parse_target
from mrm_edge.runtime.fallback import BackendChain
from mrm_edge.runtime.model import DeployedModel

from mrm_edge.cli.serve.server import ServerPorts, TritonServer
from mrm_edge.served_identity import model_identity
from tests.triton_fixtures import START_TIMEOUT_S, Served, free_ports, kill, need_triton

MRM_EDGE = str(Path(sys.executable).parent / "mrm-edge")


def monitor_cmd(model: Path, target: str, events: Path, seconds: float, seed: int) -> list[str]:
    return [
        MRM_EDGE, "monitor", "--model", str(model), "--backend", target,
        "--streams", "2", "--speed", "10x", "--duration", str(seconds), "--no-ui",
        "--max-batch", "8", "--max-delay", "20", "--events", str(events), "--seed", str(seed),
    ]  # fmt: skip


def read_events(path: Path) -> tuple[list[dict], dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    summary = lines[-1]
    assert summary["type"] == "summary"
    return [e for e in lines if e["type"] == "window"], summary


def restartable_server(
    model_dir: Path, tmp_path: Path
) -> tuple[ServerPorts, Callable[[], TritonServer]]:
    """The model's Python-backend repository and a function that starts a server on it, on
    the same free ports each time (so a test can kill it and bring it back)."""
    repo = write_triton_repo(model_dir, tmp_path / "repo", only_local=True, cpu_threads=1)
    ports = free_ports()

    def server() -> TritonServer:
        s = TritonServer(
            repo.directory,
            ports=ports,
            models=repo.local_models,
            start_timeout_s=START_TIMEOUT_S,
        )
        return s.start()

    return ports, server


def test_two_monitors_share_one_server_every_window_classified(
    triton_served: Served, tmp_path: Path
) -> None:
    target = f"{triton_served.target}/{triton_served.tiny_model}"
    runs = [tmp_path / f"front-{i}.jsonl" for i in range(2)]
    procs = [
        subprocess.Popen(
            monitor_cmd(triton_served.tiny, target, ev, 8.0, seed=i),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i, ev in enumerate(runs)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out
    for ev in runs:
        windows, summary = read_events(ev)
        assert summary["windows"] == len(windows) > 0, summary
        assert summary["classified"] == summary["windows"]
        assert summary["rejected"] == summary["dropped"] == 0
        assert summary["backend"].startswith("triton ") and not summary["backend_switches"]
        assert all(w["status"] == "ok" and len(w["probabilities"]) == 5 for w in windows)


def test_server_killed_mid_run_and_restarted(tiny_model: Path, tmp_path: Path) -> None:
    """Windows fall back to local ONNX Runtime while the server is gone, none is lost, and
    the run switches back when it returns; the summary says both."""
    need_triton()
    ports, server = restartable_server(tiny_model, tmp_path)

    first = server()
    events = tmp_path / "events.jsonl"
    target = f"triton:127.0.0.1:{ports.grpc}"
    proc = subprocess.Popen(
        monitor_cmd(tiny_model, target, events, 16.0, seed=0),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    second = None
    try:
        time.sleep(5.0)
        kill(first)  # the box dies: no drain
        time.sleep(3.0)
        second = server()
        out = proc.communicate(timeout=120)[0]
    finally:
        proc.kill()
        first.stop()
        if second is not None:
            second.stop()
    assert proc.returncode == 0, out
    windows, summary = read_events(events)
    # None lost: every window produced is in the log, classified or rejected with a reason.
    assert summary["windows"] == len(windows) > 0
    assert summary["classified"] + summary["rejected"] + summary["dropped"] == summary["windows"]
    for w in windows:
        assert w["status"] == "ok" or w.get("reason"), w
    switches = summary["backend_switches"]
    assert len(switches) >= 2, switches
    away, back = switches[0], switches[-1]
    assert away["from"].startswith("triton ") and away["to"].startswith("onnxruntime")
    assert "UNAVAILABLE" in away["reason"] or "triton" in away["reason"]
    assert back["to"].startswith("triton ") and back["reason"].startswith("server back")
    assert summary["backend"].startswith("triton ")
    report = " ".join(out.split())  # the report wraps at the terminal width
    assert "backend switched" in report and "server back: reconnected" in report


def test_chain_switches_back_when_the_server_returns(tiny_model: Path, tmp_path: Path) -> None:
    need_triton()
    model = DeployedModel.load(tiny_model)
    ports, server = restartable_server(tiny_model, tmp_path)

    remote = TritonBackend(
        parse_target(f"127.0.0.1:{ports.grpc}"),
        model_identity(model),
        timeout_s=2.0,
        reconnect_after_s=0.0,
    )
    local = OnnxRuntimeBackend(model.onnx["fp32"].path, providers=["CPUExecutionProvider"])
    switches = []
    chain = BackendChain(remote, [local], outputs=5, on_switch=switches.append)
    x = np.zeros((3, 12, 1000), np.float32)
    first = server()
    try:
        chain.start()
        assert chain.infer(x).probabilities is not None and chain.backend is remote
        kill(first)
        out = chain.infer(x)  # fails twice on the server, re-run locally
        assert out.probabilities is not None and chain.backend is local
        second = server()
        try:
            out = chain.infer(x)  # the server answers again: back to it
            assert out.probabilities is not None and chain.backend is remote
        finally:
            second.stop()
    finally:
        chain.release()
        first.stop()
    assert [s.to_backend.split()[0] for s in switches] == ["onnxruntime", "triton"]
    assert switches[1].reason.startswith("server back")


def test_monitor_refuses_a_wrong_model_in_one_line(triton_served: Served) -> None:
    wrong = f"{triton_served.target}/{triton_served.tiny_model}"
    r = subprocess.run(
        [MRM_EDGE, "monitor", "--model", str(triton_served.shipped), "--backend", wrong,
         "--duration", "1", "--no-ui"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 1
    err = r.stderr.strip().splitlines()
    assert err[-1].startswith("Error: ") and "not the model of" in err[-1]
    assert "onnx sha256" in err[-1] and "Traceback" not in r.stderr


def test_without_a_fallback_windows_are_rejected_with_the_reason_until_it_returns(
    tiny_model: Path, tmp_path: Path
) -> None:
    need_triton()
    model = DeployedModel.load(tiny_model)
    ports, server = restartable_server(tiny_model, tmp_path)

    remote = TritonBackend(parse_target(f"127.0.0.1:{ports.grpc}"), model_identity(model))
    chain = BackendChain(remote, [], outputs=5)
    x = np.zeros((2, 12, 1000), np.float32)
    first = server()
    try:
        chain.start()
        assert chain.infer(x).probabilities is not None
        kill(first)
        out = chain.infer(x)
        assert out.probabilities is None
        assert out.reason.startswith("backend error: RuntimeError: triton 127.0.0.1:")
        second = server()
        try:  # the same channel reconnects: classified again
            assert chain.infer(x).probabilities is not None
        finally:
            second.stop()
    finally:
        chain.release()
        first.stop()
