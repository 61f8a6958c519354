"""GPU rows of `mrm-edge bench`: ONNX Runtime CUDA and TensorRT, each timed through the
monitor's own backend, so what is measured is what the monitor runs (the timing methods,
and what has run only against the test doubles: docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mrm_edge.artifacts import ONNX_FILES
from mrm_edge.cli.bench.common import (
    Log,
    Result,
    max_abs_dp,
    quiet,
    summarise,
    time_calls,
)
from mrm_edge.data.synthetic import make_windows
from mrm_edge.errors import first_line
from mrm_edge.stats import percentiles_ms


class GpuUnavailable(RuntimeError):
    """This GPU backend / precision cannot be benchmarked here; the message says why."""


def bench_gpu_backend(
    name: str,
    model_dir: Path,
    precision: str,
    batch_sizes: list[int],
    warmup: int = 3,
    repeats: int = 10,
    log: Log = quiet,
    *,
    reference: np.ndarray | None = None,
    facts: Any = None,
) -> tuple[list[Result], list[dict[str, Any]]]:
    """Time ``name`` (``onnxruntime-cuda`` or ``tensorrt``), run by the monitor's own backend,
    at every batch size it admits; the rows and the batch sizes skipped (outside a TensorRT
    profile) with the reason. :class:`GpuUnavailable` says why it cannot run here.
    ``facts``: the machine (``runtime.facts.MachineFacts``) for ``tensorrt``, with the
    TensorRT and CUDA modules it describes (tests: the test doubles)."""
    from mrm_edge.runtime.model import DeployedModel, ModelLoadError

    try:
        model = DeployedModel.load(Path(model_dir))
    except ModelLoadError as e:
        raise GpuUnavailable(str(e)) from e
    if name == "tensorrt":
        backend = _tensorrt_backend(model, precision, facts)
    else:
        backend = _onnxruntime_cuda_backend(model, precision)
    x = make_windows(model.card, max(batch_sizes))
    return _time_rows(name, backend, x, batch_sizes, warmup, repeats, reference, log)


def _onnxruntime_cuda_backend(model: Any, precision: str) -> Any:
    """ONNX Runtime with the CUDA provider only (I/O binding), on ``model.onnx`` (fp32) or
    ``model.fp16.onnx`` (fp16); activating it refuses a session that fell back to the CPU."""
    from mrm_edge.runtime.backends.onnxruntime import CUDA, OnnxRuntimeBackend

    if precision not in ("fp32", "fp16"):
        raise GpuUnavailable(
            f"onnxruntime-cuda {precision}: not benchmarked (the CUDA provider runs Q/DQ graphs "
            "dequantized; INT8 is a TensorRT or CPU variant)"
        )
    art = model.onnx.get(precision)
    if art is None:
        name = ONNX_FILES[precision]
        why = model.refused.get(name, f"{model.directory / name}: not exported")
        raise GpuUnavailable(f"onnxruntime-cuda {precision}: {why}")
    return OnnxRuntimeBackend(art.path, providers=[CUDA])


def _tensorrt_backend(model: Any, precision: str, facts: Any) -> Any:
    """The monitor's ``TensorRTBackend`` on this GPU's ``precision`` engine."""
    from mrm_edge.runtime.backends.tensorrt.capability import STANDARD
    from mrm_edge.runtime.backends.tensorrt.runner import TensorRTBackend

    art = _fitting_engine(model, precision, facts)
    trt = (facts.trt_modules or {}).get(art.key.get("flavour", STANDARD))
    return TensorRTBackend(art.path, precision=precision, trt=trt, cudart=facts.cudart)


def _time_rows(
    name: str,
    backend: Any,
    x_all: np.ndarray,
    batch_sizes: list[int],
    warmup: int,
    repeats: int,
    reference: np.ndarray | None,
    log: Log,
) -> tuple[list[Result], list[dict[str, Any]]]:
    """The rows of one of the monitor's backends: activated once (a refusal is
    :class:`GpuUnavailable`), every batch size its profile admits timed, then deactivated;
    and the batch sizes outside its profile, with the reason."""
    try:
        backend.activate()
    except (RuntimeError, ValueError, OSError) as e:
        why = getattr(e, "reason", None) or first_line(e, with_type=False)
        raise GpuUnavailable(f"{name} {backend.precision}: {why}") from e
    results: list[Result] = []
    skipped: list[dict[str, Any]] = []
    try:
        for b in batch_sizes:
            why = _out_of_profile(backend, b)
            if why:
                row = {"backend": name, "precision": backend.precision, "batch_size": b}
                skipped.append(row | {"reason": why})
                log(f"skipped {name} {backend.precision} batch {b}: {why}")
                continue
            x = np.ascontiguousarray(x_all[:b])
            timed = _time_by_events if name == "tensorrt" else _time_by_wall_clock
            r, out = timed(backend, x, warmup, repeats)
            r.max_abs_dp_vs_cpu_fp32 = max_abs_dp(out, reference)
            results.append(r)
            log(f"{name} {backend.precision} batch {b}: {r.throughput:.1f} windows/s")
    finally:
        backend.deactivate()  # frees the buffers and releases the device
    return results, skipped


def _fitting_engine(model: Any, precision: str, facts: Any) -> Any:
    """The verified ``precision`` engine of ``model`` (a DeployedModel) that runs on this GPU
    with the TensorRT flavours installed, as the runtime judges it (``engine_file.fit_engines``,
    backend selection's check); the widest batch profile if several fit. The backend verifies
    it against this GPU and TensorRT when it activates. :class:`GpuUnavailable` says why
    there is none (naming the export command that builds one)."""
    from mrm_edge.runtime.backends.tensorrt.capability import RTX, STANDARD
    from mrm_edge.runtime.backends.tensorrt.engine_file import fit_engines

    gpu = facts.gpu
    if gpu is None:
        raise GpuUnavailable(f"tensorrt: no GPU ({facts.gpu_reason})")
    versions = {f: (i.version if i.available else None) for f, i in facts.tensorrt.items()}
    if not any(versions.values()):
        raise GpuUnavailable(f"tensorrt: {facts.tensorrt[STANDARD].reason}")
    fitting, misfits = fit_engines(
        model.engines,
        (precision,),
        gpu.name,
        gpu.compute_capability,
        versions[STANDARD],
        versions[RTX],
    )
    misfits += [f"{n}: {why}" for n, why in model.refused.items() if n.endswith(".engine")]
    if not fitting:
        flag = {"fp16": " --fp16", "int8": " --int8 --calib-data DATA"}.get(precision, "")
        have = " / ".join(
            f"{name} {versions[f]}"
            for f, name in ((STANDARD, "TensorRT"), (RTX, "TensorRT-RTX"))
            if versions[f]
        )
        raise GpuUnavailable(
            f"tensorrt {precision}: no engine for {gpu.name} / {have or 'no TensorRT'} in "
            f"{model.directory} ({'; '.join(misfits) or 'none built'}); build one with "
            f"`mrm-edge export --model {model.directory}{flag} --engine --batch 1,32,256`"
        )
    return max(fitting, key=lambda e: int((e.key.get("profile") or [1, 1, 1])[2]))


def _out_of_profile(backend: Any, b: int) -> str | None:
    """Why batch ``b`` is outside an engine's profile (None: inside, or no profile)."""
    lo, hi = getattr(backend, "profile_min", (1,))[0], getattr(backend, "profile_max", (b,))[0]
    if lo <= b <= hi:
        return None
    return (
        f"batch {b} outside the engine's profile {lo}..{hi} ({backend.engine_path.name}; "
        "rebuild with `mrm-edge export --engine --batch MIN,OPT,MAX`)"
    )


def _time_by_wall_clock(
    backend: Any, x: np.ndarray, warmup: int, repeats: int
) -> tuple[Result, np.ndarray]:
    """One batch size of ONNX Runtime CUDA: it has no CUDA-event API, so the host wall clock
    around the synchronous ``backend.infer``."""
    outs: list[np.ndarray] = []
    times = time_calls(lambda: outs.append(backend.infer(x)), warmup, repeats)
    r = summarise("onnxruntime-cuda", backend.precision, backend.device, len(x), times)
    r.timing = (
        "host wall clock around the monitor's OnnxRuntimeBackend.infer (CUDA provider, I/O "
        "binding: input from host memory, output bound on the GPU and copied back), copies "
        "included (ONNX Runtime has no CUDA-event API)"
    )
    return r, outs[-1]


def _time_by_events(
    backend: Any, x: np.ndarray, warmup: int, repeats: int
) -> tuple[Result, np.ndarray]:
    """One batch size: warmup + repeats calls of ``backend.infer``, timed by its events."""
    for _ in range(warmup):
        backend.infer(x)
    ms = np.empty((repeats, 4))  # [repeats, (h2d, compute, d2h, e2e)]
    for i in range(repeats):
        out = backend.infer(x)
        ms[i] = backend.last_stages_ms()
    r = summarise("tensorrt", backend.precision, backend.device, len(x), ms[:, 1] / 1e3)
    r.timing = (
        "CUDA events on one stream, inside the monitor's TensorRTBackend.infer: enqueue "
        "(execute_async_v3) device time; H2D and D2H from pinned memory apart (h2d_ms, "
        "d2h_ms); end_to_end_ms = first to last event"
    )
    r.h2d_ms = percentiles_ms(ms[:, 0])
    r.d2h_ms = percentiles_ms(ms[:, 2])
    r.end_to_end_ms = percentiles_ms(ms[:, 3])
    return r, out
