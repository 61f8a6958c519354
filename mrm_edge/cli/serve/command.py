"""``mrm-edge serve``: the model on a real Triton Inference Server on this machine."""

from __future__ import annotations

import signal
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
    model_dir: str | None, http_port: int, grpc_port: int, metrics_port: int, **kw: Any
) -> None:
    """Serve the model on this machine's Triton Inference Server (the tritonserver of
    nvidia-pytriton: ONNX Runtime CPU in Triton's Python backend) until Ctrl-C / SIGTERM.

    Front-ends connect with `mrm-edge monitor --backend triton:HOST:GRPC_PORT`. GPU nodes run
    NVIDIA's Triton container on `mrm-edge export --triton-repo DIR` instead (docs/triton.md).
    """
    from mrm_edge.cli.serve.run import serve_model
    from mrm_edge.cli.serve.server import ServerPorts, ServeUnavailable

    err = console()
    ports = ServerPorts(http_port, grpc_port, metrics_port)
    stop = threading.Event()
    reason: list[str] = []

    def on_signal(signum: int, frame: Any) -> None:
        reason.append(signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with serve_model(model_path(model_dir), ports=ports, **kw) as served:
            host = served.server.host
            for line in served.repo.model.tuning_lines() if served.repo.model else ():
                err.print(line, markup=False, highlight=False, soft_wrap=True)
            for m in served.repo.local_models:
                err.print(f"serving {m}", markup=False, highlight=False)
            err.print(
                f"tritonserver ready: grpc {host}:{grpc_port}, http {host}:{http_port}, "
                f"metrics http://{host}:{metrics_port}/metrics; front-ends: "
                f"--backend {served.address}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            while not stop.wait(0.5):
                if not served.server.alive():
                    raise click.ClickException(
                        f"tritonserver exited ({served.server.last_log_line()})"
                    )
            err.print(f"{reason[0]}: stopping tritonserver", markup=False, highlight=False)
    except ServeUnavailable as e:
        raise click.ClickException(str(e)) from e
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
