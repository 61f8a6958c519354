"""A real ``tritonserver`` for the tests (imported by ``tests/conftest.py``): one per
session, on free loopback ports, with a bounded start-up wait, stopped at the end.

It serves one repository holding two models' Python-backend (ONNX Runtime CPU) models:

- the shipped MRM-Net's FP32 model (parity with in-process ONNX Runtime, bench);
- a tiny model (``tests.fakes.make_onnx``: a small real graph with its own card), quick
  enough for the monitor runs, and the "wrong model" for a front-end of the shipped one.

Skipped with the reason when the server cannot run here (no nvidia-pytriton, no
tritonclient). Tests that kill a server start their own (:func:`start_server`).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mrm_edge.export.sidecar import write_sidecar
from mrm_edge.export.triton_repo import write_triton_repo

from mrm_edge.artifacts import SHIPPED_MODEL_DIR
from mrm_edge.cli.serve.server import ServerPorts, ServeUnavailable, TritonServer, find_tritonserver
from tests.fakes import LABELS, card_stamp, make_onnx, write_card

START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports() -> ServerPorts:
    return ServerPorts(free_port(), free_port(), free_port())


def need_triton() -> None:
    """Skip unless a tritonserver and tritonclient are installed."""
    try:
        find_tritonserver()
    except ServeUnavailable as e:
        pytest.skip(str(e))
    if importlib.util.find_spec("tritonclient") is None:
        pytest.skip("tritonclient is not installed (pip install 'mrm-edge[triton]')")


def make_tiny_model(root: Path) -> Path:
    """A model directory with a card and a small real FP32 ONNX (quick on any CPU)."""
    root.mkdir(parents=True, exist_ok=True)
    write_card(root)
    path = make_onnx(root / "model.onnx", seed=3)
    write_sidecar(
        path,
        {
            "precision": "fp32",
            "labels": list(LABELS),
            "sampling_rate": 100,
            "window_samples": 1000,
            **card_stamp(root),
        },
    )
    return root


def kill(server: TritonServer) -> None:
    """SIGKILL the server, no drain: the box dies (its own process group: the stubs too)."""
    proc = server._proc
    assert proc is not None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def start_server(repo: Path, models: list[str]) -> TritonServer:
    server = TritonServer(repo, ports=free_ports(), models=models, start_timeout_s=START_TIMEOUT_S)
    try:
        return server.start()
    except ServeUnavailable as e:
        pytest.fail(f"tritonserver did not start: {e}")


@dataclass
class Served:
    server: TritonServer
    shipped: Path
    """The shipped model directory (its fp32 Python-backend model is served)."""
    tiny: Path
    """The tiny model directory (served too)."""
    shipped_model: str
    tiny_model: str

    @property
    def target(self) -> str:
        return f"triton:{self.server.grpc_address}"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("triton-tiny") / "model")


@pytest.fixture(scope="session")
def triton_served(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Served]:
    need_triton()
    if not (SHIPPED_MODEL_DIR / "model.onnx").is_file():
        pytest.skip(f"no shipped model at {SHIPPED_MODEL_DIR}")
    root = tmp_path_factory.mktemp("triton-repo")
    repo = root / "repo"
    shipped = write_triton_repo(SHIPPED_MODEL_DIR, repo, only_local=True, cpu_threads=1)
    tiny = write_triton_repo(tiny_model, repo, only_local=True, cpu_threads=1)
    shipped_fp32 = next(m.name for m in shipped.models if m.variant == "fp32")
    # Only what the tests use is loaded: the shipped INT8 session would cost start-up time.
    for m in shipped.models:
        if m.name != shipped_fp32:
            shutil.rmtree(repo / m.name)
    models = [shipped_fp32, *tiny.local_models]
    server = start_server(repo, models)
    try:
        yield Served(server, SHIPPED_MODEL_DIR, tiny_model, shipped_fp32, tiny.local_models[0])
    finally:
        server.stop()
