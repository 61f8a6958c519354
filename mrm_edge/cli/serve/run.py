"""A model directory served on this machine's ``tritonserver``: its repository (only the
models the bundled server can load: ONNX Runtime CPU in the Python backend), written to a
folder of the caller's or a temporary one, and the server on it."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mrm_edge.cli.serve.server import DEFAULT_PORTS, ServerPorts, TritonServer
from mrm_edge.export.triton_repo import DEFAULT_QUEUE_DELAY_MS, TritonRepo, write_triton_repo


@dataclass
class ServedModel:
    """A running server and what it serves."""

    server: TritonServer
    repo: TritonRepo

    @property
    def address(self) -> str:
        """What a front-end names: ``triton:HOST:GRPC_PORT``."""
        return f"triton:{self.server.grpc_address}"


@contextlib.contextmanager
def serve_model(
    model_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    ports: ServerPorts = DEFAULT_PORTS,
    repo_dir: str | Path | None = None,
    max_batch: int = 32,
    max_delay_ms: float = DEFAULT_QUEUE_DELAY_MS,
    instances: int = 1,
    cpu_threads: int = 0,
    cpu_spinning: bool = True,
    start_timeout_s: float = 120.0,
    accept_card_tuning: bool = False,
) -> Iterator[ServedModel]:
    """Write the repository of ``model_dir`` (into ``repo_dir``, else a temporary folder
    removed afterwards), start ``tritonserver`` on it with the models it can load, yield
    the running server, and stop it on the way out (SIGTERM, then kill).

    Before the server starts, each ONNX file it will serve gives one zero window on ONNX
    Runtime CPU (what its Python backend runs): outputs that contradict the card are refused
    here in one line (``selection.check_outputs``), not at the first front-end's request."""
    with contextlib.ExitStack() as stack:
        if repo_dir is None:
            repo_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="mrm-edge-repo-"))
        repo = write_triton_repo(
            model_dir,
            repo_dir,
            max_batch=max_batch,
            max_delay_ms=max_delay_ms,
            instances=instances,
            cpu_threads=cpu_threads,
            cpu_spinning=cpu_spinning,
            only_local=True,
            accept_card_tuning=accept_card_tuning,
        )
        _check_served(repo)
        server = TritonServer(
            repo.directory,
            host=host,
            ports=ports,
            models=repo.local_models,
            start_timeout_s=start_timeout_s,
        )
        stack.enter_context(server)
        yield ServedModel(server, repo)


def _check_served(repo: TritonRepo) -> None:
    """One zero window through every ONNX file the server will load (BackendUnavailable)."""
    from mrm_edge.card import CARD_FILE
    from mrm_edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
    from mrm_edge.runtime.selection import check_outputs

    model = repo.model
    assert model is not None  # write_triton_repo always sets it
    for m in repo.models:
        if m.local:
            art = model.onnx[m.variant]
            with OnnxRuntimeBackend(art.path, ["CPUExecutionProvider"], 1) as backend:
                check_outputs(backend, model.card, model.directory / CARD_FILE, str(art.path))
