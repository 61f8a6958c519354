"""``mrm-edge bench --backend triton:HOST:PORT``: the served model through Triton (gRPC, the
network hop and Triton's batcher included) against the same ONNX variant in-process with
ONNX Runtime CPU, paired call by call so that background load weighs on both alike."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mrm_edge.cli.bench.common import Log, Result, quiet, summarise
from mrm_edge.data.synthetic import make_windows


@dataclass
class TritonPair:
    """One batch size: the Triton row, the in-process row, and how they compare."""

    triton: Result
    local: Result
    throughput_ratio: float
    """Triton throughput / in-process throughput."""
    added_p99_ms: float
    """Triton p99 per call minus in-process p99 per call (the hop, queueing, serialisation)."""


def _paired_times(a: Any, b: Any, x: np.ndarray, warmup: int, repeats: int) -> np.ndarray:
    """Seconds per call of ``a`` and of ``b`` ([2, repeats]), calls alternated."""
    for _ in range(warmup):
        a.infer(x)
        b.infer(x)
    times = np.empty((2, repeats))
    for i in range(repeats):
        for j, be in enumerate((a, b)):
            t0 = time.perf_counter()
            be.infer(x)
            times[j, i] = time.perf_counter() - t0
    return times


def bench_triton(
    model_dir: Path,
    target: str,
    batch_sizes: list[int],
    warmup: int = 2,
    repeats: int = 10,
    log: Log = quiet,
) -> list[TritonPair]:
    """Time the model behind ``target`` (``triton:HOST:PORT[/MODEL]``) against the same
    variant in-process. Raises BackendUnavailable / ServedModelMismatch (one line) when the
    server is unreachable or serves another model."""
    from mrm_edge.runtime.backends.onnxruntime import CPU, OnnxRuntimeBackend
    from mrm_edge.runtime.model import DeployedModel
    from mrm_edge.runtime.selection import select_backend

    model = DeployedModel.load(model_dir)
    remote, _why = select_backend(model, target)
    pairs: list[TritonPair] = []
    with remote:
        variant = _served_variant(remote, model)
        local = OnnxRuntimeBackend(model.onnx[variant].path, providers=[CPU])
        log(f"triton: {remote.describe()}; in-process: onnxruntime CPU {model.onnx[variant].name}")
        with local:
            for batch in batch_sizes:
                x = make_windows(model.card, batch)
                t = _paired_times(remote, local, x, warmup, repeats)
                r = summarise("triton", remote.precision, remote.device, batch, t[0])
                lo = summarise("onnxruntime", local.precision, "cpu (in-process)", batch, t[1])
                r.timing = "host wall clock around a synchronous gRPC call (network hop included)"
                pairs.append(
                    TritonPair(
                        r,
                        lo,
                        r.throughput / lo.throughput,
                        r.latency_ms["p99"] - lo.latency_ms["p99"],
                    )
                )
                log(pair_lines([pairs[-1]])[-1])
    return pairs


def _served_variant(remote: Any, model: Any) -> str:
    """The ONNX variant the served model runs (its ``mrm_edge.variant`` parameter), to run
    the same file in-process; FP32 when it is an engine or not in this directory."""
    from mrm_edge.served_identity import parameters_of

    client = remote._client  # the backend's own connection: one config read
    config = client.get_model_config(remote.model_name, as_json=True)["config"]
    variant = parameters_of(config).get("mrm_edge.variant", "fp32")
    return variant if variant in model.onnx else "fp32"


def pair_lines(pairs: list[TritonPair]) -> list[str]:
    """The comparison as plain lines (a header, then one line per batch size)."""
    out = [
        "batch  in-process w/s  triton w/s  ratio  in-process p50/p99 ms  triton p50/p99 ms  "
        "added p99 ms"
    ]
    for p in pairs:
        lo, tr = p.local, p.triton
        out.append(
            f"{tr.batch_size:5d}  {lo.throughput:14.1f}  {tr.throughput:10.1f}  "
            f"{p.throughput_ratio:5.2f}  {lo.latency_ms['p50']:9.1f}/{lo.latency_ms['p99']:<9.1f}  "
            f"  {tr.latency_ms['p50']:7.1f}/{tr.latency_ms['p99']:<9.1f}  {p.added_p99_ms:12.1f}"
        )
    return out
