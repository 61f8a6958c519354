"""Front-end capacity: how many real-time streams a monitor keeps up with on a backend —
in-process, or on a Triton server that several front-ends share.

It is the streaming bench's max-speed probe (:mod:`mrm_edge.cli.bench.streaming`, step 1-2):
synthetic patients rendered beforehand, replayed as fast as the real ``Monitor`` takes them
(preprocessing, batching, backend, post-processing), ``W`` = classified windows per second
of wall time, and ``floor(W x hop)`` streams at real time. Run one process per front-end at
the same time to measure front-ends sharing a server::

    python -m benchmarks.frontends --backend onnxruntime --precision int8 --streams 8
    python -m benchmarks.frontends --backend triton:127.0.0.1:8001 --streams 4 &
    python -m benchmarks.frontends --backend triton:127.0.0.1:8001 --streams 4 --seed 1

Each prints one JSON line (``windows_per_s``, ``realtime_streams``, the run's figures).

``--realtime`` paces the same patients at real time instead (the first window's signal
pre-filled, as streams already running), for the latency a window sees at a given load:
``latency_ms`` is window complete → result, the figure the monitor reports. Paired runs
in-process and through Triton give the latency the server adds per window::

    python -m benchmarks.frontends --backend onnxruntime --precision int8 \
        --realtime --streams 32
    python -m benchmarks.frontends --backend triton:127.0.0.1:8001 --streams 32 --realtime
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

__all__ = ["probe_frontend"]

SYNTHETIC_FS = 500  # the synthetic source's default rate (the monitor's demo patients)


def probe_frontend(
    model_dir: Path,
    backend: str,
    *,
    precision: str | None = None,
    streams: int = 4,
    seconds: float = 60.0,
    hop_s: float = 1.0,
    max_batch: int = 32,
    max_delay_ms: float = 50.0,
    seed: int = 0,
    realtime: bool = False,
) -> dict[str, Any]:
    """The max-speed probe of one front-end on ``backend``, or with ``realtime`` its
    latency per window at ``streams`` real-time patients (module docstring)."""
    from mrm_edge.runtime.app import open_monitor
    from mrm_edge.runtime.config import MonitorConfig
    from mrm_edge.runtime.model import DeployedModel

    from mrm_edge.cli.bench.streaming import (
        max_speed_source,
        prefilled_realtime_source,
        run_figures,
    )

    model = DeployedModel.load(model_dir)
    if realtime:
        window_s = model.card.window_seconds
        src = prefilled_realtime_source(streams, SYNTHETIC_FS, window_s, seconds, seed)
    else:
        src = max_speed_source(streams, SYNTHETIC_FS, seconds, seed)
    config = MonitorConfig(hop_s=hop_s, max_batch=max_batch, max_delay_ms=max_delay_ms)
    with open_monitor(model, src, config, backend, precision) as monitor:
        summary = monitor.run()
    w = summary.throughput_wps
    return {
        "backend": summary.backend,
        "why": monitor.backend_reason,
        "streams": streams,
        "seconds": seconds,
        "pace": "real time" if realtime else "max speed",
        "windows_per_s": w,
        "realtime_streams": math.floor(w * hop_s),
        **run_figures(summary),
    }


def main(argv: list[str] | None = None) -> None:
    from mrm_edge.artifacts import default_model_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--precision", default=None)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-delay", type=float, default=50.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--realtime", action="store_true", help="pace the patients at real time")
    a = ap.parse_args(argv)
    out = probe_frontend(
        default_model_dir(a.model),
        a.backend,
        precision=a.precision,
        streams=a.streams,
        seconds=a.seconds,
        max_batch=a.max_batch,
        max_delay_ms=a.max_delay,
        seed=a.seed,
        realtime=a.realtime,
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
