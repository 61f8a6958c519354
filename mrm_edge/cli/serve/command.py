"""``mrm-edge serve``: the model on a real Triton Inference Server on this machine."""

from __future__ import annotations

import contextlib
import signal
import tempfile
import threading
from typing import Any

import click

from mrm_edge.cli.common import console, model_path
from mrm_edge.cli.options import card_tuning_option, model_option, user_errors


def _port(name: str, default: int) -> Any:
    return click.option(
        f"--{name}-port", type=click.IntRange(1, 65535), default=default, show_default=True
    )


@click.command()
@model_option("Exported model", must_exist=False)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address the HTTP, gRPC and metrics endpoints bind (0.0.0.0: every interface).",
)
@_port("http", 8000)
@_port("grpc", 8001)
@_port("metrics", 8002)
@click.option(
    "--max-batch",
    type=click.IntRange(1),
    default=32,
    show_default=True,
    help="Triton's dynamic batcher: preferred batch (as the monitor's --max-batch).",
)
@click.option(
    "--max-delay",
    "max_delay_ms",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Triton's dynamic batcher: queue delay in ms. The front-ends already waited their "
    "own --max-delay, so 0 adds no second wait; requests that queue while the model is busy "
    "are still merged. Raise it for clients that send one window per request.",
)
@click.option("--instances", type=click.IntRange(1), default=1, show_default=True)
@click.option(
    "--threads",
    "cpu_threads",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="ONNX Runtime threads per model instance (0: ONNX Runtime's default).",
)
@click.option(
    "--spin/--no-spin",
    "cpu_spinning",
    default=True,
    show_default=True,
    help="ONNX Runtime threads spin-wait between operators (its default, as in-process). "
    "--no-spin where the server shares its cores with other busy work.",
)
@click.option(
    "--repo",
    "repo_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Write the served repository here and keep it (default: a temporary folder).",
)
@click.option(
    "--start-timeout",
    "start_timeout_s",
    type=click.FloatRange(min=1),
    default=120.0,
    show_default=True,
    help="Seconds to wait for the server to become ready.",
)
@card_tuning_option()
@user_errors
def serve(
    model_dir: str | None,
    host: str,
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    repo_dir: str | None,
    start_timeout_s: float,
    **repo_options: Any,
) -> None:
    """Serve the model on this machine's Triton Inference Server (the tritonserver of
    nvidia-pytriton: ONNX Runtime CPU in Triton's Python backend) until Ctrl-C / SIGTERM.

    Front-ends connect with `mrm-edge monitor --backend triton:HOST:GRPC_PORT`. GPU nodes run
    NVIDIA's Triton container on `mrm-edge export --triton-repo DIR` instead (docs/triton.md).
    """
    from mrm_edge.cli.serve.server import ServerPorts, ServeUnavailable, TritonServer
    from mrm_edge.export.triton_repo import write_triton_repo

    stop = threading.Event()
    reason: list[str] = []

    def on_signal(signum: int, frame: Any) -> None:
        reason.append(signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with contextlib.ExitStack() as stack:
            if repo_dir is None:  # a temporary repository, removed afterwards
                repo_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="mrm-edge-repo-"))
            repo = write_triton_repo(
                model_path(model_dir), repo_dir, only_local=True, **repo_options
            )
            _check_served(repo)
            server = TritonServer(
                repo.directory,
                host=host,
                ports=ServerPorts(http_port, grpc_port, metrics_port),
                models=repo.local_models,
                start_timeout_s=start_timeout_s,
            )
            stack.enter_context(server)  # stopped on the way out: SIGTERM, then kill
            _announce(server, repo)
            while not stop.wait(0.5):
                if not server.alive():
                    raise click.ClickException(f"tritonserver exited ({server.last_log_line()})")
            console().print(f"{reason[0]}: stopping tritonserver", markup=False, highlight=False)
    except ServeUnavailable as e:
        raise click.ClickException(str(e)) from e
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _check_served(repo: Any) -> None:
    """One zero window through every ONNX file the server will load, on ONNX Runtime CPU
    (what its Python backend runs): outputs that contradict the card are refused here in one
    line (``selection.check_outputs``), not at the first front-end's request."""
    from mrm_edge.card import CARD_FILE
    from mrm_edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
    from mrm_edge.runtime.selection import check_outputs

    model = repo.model
    for m in repo.models:
        if m.local:
            art = model.onnx[m.variant]
            with OnnxRuntimeBackend(art.path, ["CPUExecutionProvider"], 1) as backend:
                check_outputs(backend, model.card, model.directory / CARD_FILE, str(art.path))


def _announce(server: Any, repo: Any) -> None:
    """What is served and where, on stderr (a re-tuned card's changes first)."""
    err, host, ports = console(), server.host, server.ports
    for line in repo.model.tuning_lines():
        err.print(line, markup=False, highlight=False, soft_wrap=True)
    for m in repo.local_models:
        err.print(f"serving {m}", markup=False, highlight=False)
    err.print(
        f"tritonserver ready: grpc {host}:{ports.grpc}, http {host}:{ports.http}, "
        f"metrics http://{host}:{ports.metrics}/metrics; front-ends: "
        f"--backend triton:{server.grpc_address}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
