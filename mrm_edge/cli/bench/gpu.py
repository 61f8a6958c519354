"""GPU rows of `mrm-edge bench`: ONNX Runtime CUDA and TensorRT timing (the peak:
:mod:`mrm_edge.cli.bench.peak`; PyTorch CUDA: :mod:`mrm_edge.cli.bench.torch_cuda`; all of them
run by :func:`mrm_edge.cli.bench.gpu_run.run_gpu`).

Timing (every row records its own method in ``timing``):

- **TensorRT**: the monitor's own :class:`~mrm_edge.runtime.backends.tensorrt.TensorRTBackend`,
  activated once per precision; every call is its ``infer``, and its timing events (one
  stream: around the host-to-device copy from pinned memory, the enqueue
  ``execute_async_v3``, the device-to-host copy) give the intervals
  (``TensorRTBackend.last_stages_ms``). Throughput = batch / median enqueue time; ``h2d_ms``
  and ``d2h_ms`` apart; ``end_to_end_ms`` = first event to last. Buffers are the backend's,
  allocated once at activation, outside the timed loop.
- **ONNX Runtime CUDA**: input and output bound on the GPU with IOBinding. ONNX Runtime has
  no CUDA-event API, so device time is the host wall time of the synchronous
  ``run_with_iobinding`` (it synchronizes the provider's stream before returning; launch
  overhead is included). The host-to-device copy (``OrtValue.update_inplace`` from pageable
  host memory) and the device-to-host copy of the output are timed apart the same way.
- The peak (:func:`measure_gpu_peak`): best of N square matmuls per dtype, CUDA events, with
  PyTorch. FP32 rows are compared with the TF32 peak, because cuDNN (PyTorch), ONNX
  Runtime's CUDA provider and TensorRT all allow TF32 convolutions by default; FP16 rows with
  the FP16 peak; INT8 rows with the FP16 peak too (no INT8 peak is measured: say so).

Every GPU row also carries ``max_abs_dp_vs_cpu_fp32``: its last output against ONNX Runtime
CPU FP32 on the same windows, so a fast but wrong backend shows.

NOT EXECUTED on this project's machines (no GPU, no TensorRT): the TensorRT path ran only
against the test doubles in ``tests/fakes/tensorrt.py``; the ONNX Runtime CUDA path only up
to its refusal (no CUDA provider, or a session that fell back to the CPU); the peak never.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mrm_edge.cli.bench.common import Log, Result, input_windows, quiet, summarise
from mrm_edge.cli.bench.variants import VARIANT_FILES
from mrm_edge.errors import first_line
from mrm_edge.stats import percentiles_ms

__all__ = ["GpuUnavailable", "bench_onnxruntime_cuda", "bench_tensorrt", "find_engine"]

CUDA_EP = "CUDAExecutionProvider"


class GpuUnavailable(RuntimeError):
    """This GPU backend / precision cannot be benchmarked here; the message says why."""


def _max_abs_dp(out: np.ndarray, reference: np.ndarray | None) -> float | None:
    if reference is None:
        return None
    return float(np.max(np.abs(np.asarray(out, np.float32) - reference[: len(out)])))


def _model(model_dir: Path) -> Any:
    from mrm_edge.runtime.model import DeployedModel, ModelLoadError

    try:
        return DeployedModel.load(model_dir)
    except ModelLoadError as e:
        raise GpuUnavailable(str(e)) from e


# =========================================================================== ONNX Runtime CUDA


def bench_onnxruntime_cuda(
    model_dir: Path,
    precision: str,
    batch_sizes: list[int],
    warmup: int = 3,
    repeats: int = 10,
    log: Log = quiet,
    *,
    reference: np.ndarray | None = None,
    device_id: int = 0,
) -> list[Result]:
    """ONNX Runtime with the CUDA provider only, on ``model.onnx`` (fp32) or
    ``model.fp16.onnx`` (fp16). Raises :class:`GpuUnavailable` when the provider is missing
    or the session silently fell back to the CPU. See the module docstring for the timing."""
    import onnxruntime as ort

    if precision not in ("fp32", "fp16"):
        raise GpuUnavailable(
            f"onnxruntime-cuda {precision}: not benchmarked (the CUDA provider runs Q/DQ graphs "
            "dequantized; INT8 is a TensorRT or CPU variant)"
        )
    if CUDA_EP not in ort.get_available_providers():
        raise GpuUnavailable(
            f"onnxruntime {ort.__version__} has no {CUDA_EP} (install onnxruntime-gpu)"
        )
    model = _model(model_dir)
    art = model.onnx.get(precision)
    if art is None:
        name = VARIANT_FILES[precision]
        why = model.refused.get(name, f"{Path(model_dir) / name}: not exported")
        raise GpuUnavailable(f"onnxruntime-cuda {precision}: {why}")
    with warnings.catch_warnings():
        # A build without the provider warns before falling back; the check below says it.
        warnings.simplefilter("ignore", UserWarning)
        sess = ort.InferenceSession(str(art.path), providers=[(CUDA_EP, {"device_id": device_id})])
    if CUDA_EP not in sess.get_providers():
        raise GpuUnavailable(
            f"onnxruntime-cuda {precision}: the session fell back to {sess.get_providers()} "
            "(CUDA/cuDNN libraries missing or no usable GPU); refusing to time the CPU"
        )
    in_name, out_name = sess.get_inputs()[0].name, sess.get_outputs()[0].name
    x_all = input_windows(model.card, max(batch_sizes))
    results: list[Result] = []
    for b in batch_sizes:
        x = np.ascontiguousarray(x_all[:b], dtype=np.float32)
        x_dev = ort.OrtValue.ortvalue_from_numpy(x, "cuda", device_id)
        binding = sess.io_binding()
        binding.bind_ortvalue_input(in_name, x_dev)
        binding.bind_output(out_name, "cuda", device_id)
        last: list[np.ndarray] = []

        def step(x=x, x_dev=x_dev, binding=binding, last=last) -> tuple[float, float, float]:
            t0 = time.perf_counter()
            x_dev.update_inplace(x)  # host -> device, synchronous
            t1 = time.perf_counter()
            sess.run_with_iobinding(binding)
            t2 = time.perf_counter()
            out = binding.copy_outputs_to_cpu()[0]  # device -> host
            t3 = time.perf_counter()
            last[:] = [out]
            return t1 - t0, t2 - t1, t3 - t2

        for _ in range(warmup):
            step()
        s = np.array([step() for _ in range(repeats)])  # [repeats, (h2d, compute, d2h)] s
        r = summarise("onnxruntime-cuda", precision, f"cuda:{device_id}", b, s[:, 1])
        r.timing = (
            "host wall clock around synchronous run_with_iobinding, input and output bound on "
            "the GPU (ONNX Runtime has no CUDA-event API); H2D (update_inplace, pageable) and "
            "D2H timed apart"
        )
        r.h2d_ms = percentiles_ms(s[:, 0] * 1e3)
        r.d2h_ms = percentiles_ms(s[:, 2] * 1e3)
        r.end_to_end_ms = percentiles_ms(s.sum(axis=1) * 1e3)
        r.max_abs_dp_vs_cpu_fp32 = _max_abs_dp(last[0], reference)
        results.append(r)
        log(f"onnxruntime-cuda {precision} batch {b}: {r.throughput:.1f} windows/s")
    return results


# =========================================================================== TensorRT


def find_engine(
    model_dir: Path,
    precision: str,
    gpu: Any,
    trt_version: str | None,
    rtx_version: str | None = None,
) -> Any:
    """The verified engine of ``model_dir`` that runs on this GPU with the TensorRT flavours
    installed (standard TensorRT ``trt_version``, TensorRT-RTX ``rtx_version``; None where
    absent), as the runtime judges it (``engine_file.fit_engines``, backend selection's check);
    the widest batch profile if several fit. :class:`GpuUnavailable` names the export command
    when there is none."""
    from mrm_edge.runtime.backends.tensorrt.engine_file import fit_engines

    model = _model(model_dir)
    fitting, misfits = fit_engines(
        model.engines, (precision,), gpu.name, gpu.compute_capability, trt_version, rtx_version
    )
    misfits += [f"{n}: {why}" for n, why in model.refused.items() if n.endswith(".engine")]
    if not fitting:
        flag = {"fp16": " --fp16", "int8": " --int8 --calib-data DATA"}.get(precision, "")
        have = " / ".join(
            f"{name} {v}"
            for name, v in (("TensorRT", trt_version), ("TensorRT-RTX", rtx_version))
            if v
        )
        raise GpuUnavailable(
            f"tensorrt {precision}: no engine for {gpu.name} / {have or 'no TensorRT'} in "
            f"{model_dir} ({'; '.join(misfits) or 'none built'}); build one with "
            f"`mrm-edge export --model {model_dir}{flag} --engine --batch 1,32,256`"
        )
    return max(fitting, key=lambda e: int((e.key.get("profile") or [1, 1, 1])[2]))


def bench_tensorrt(
    model_dir: Path,
    precision: str,
    batch_sizes: list[int],
    warmup: int = 3,
    repeats: int = 10,
    log: Log = quiet,
    *,
    reference: np.ndarray | None = None,
    trt: Any = None,
    cudart: Any = None,
    device_id: int = 0,
) -> tuple[list[Result], list[dict[str, Any]]]:
    """Time this GPU's ``precision`` engine, run by the monitor's ``TensorRTBackend``, at every
    batch size its profile admits.

    Returns the rows and the batch sizes skipped (outside the profile) with the reason.
    Raises :class:`GpuUnavailable` without TensorRT, a CUDA binding (cuda-python or pycuda),
    a GPU or a fitting engine. ``trt``: the module to use; ``cudart``: a CudaApi or a
    cuda-python runtime module (tests pass the test doubles)."""
    from mrm_edge.runtime.backends.tensorrt.runner import TensorRTBackend

    art, trt, cuda = _fitting_engine(Path(model_dir), precision, trt, cudart, device_id)
    backend = TensorRTBackend(art.path, device_id=device_id, trt=trt, cudart=cuda)
    try:
        backend.activate()
    except (RuntimeError, ValueError, OSError) as e:
        why = getattr(e, "reason", None) or first_line(e, with_type=False)
        raise GpuUnavailable(f"tensorrt {precision}: {why}") from e
    x_all = input_windows(_model(Path(model_dir)).card, max(batch_sizes))
    results: list[Result] = []
    skipped: list[dict[str, Any]] = []
    try:
        for b in batch_sizes:
            lo, hi = backend.profile_min[0], backend.profile_max[0]
            if not lo <= b <= hi:
                skipped.append(_out_of_profile(art.name, precision, b, lo, hi))
                log(f"skipped tensorrt {precision} batch {b}: {skipped[-1]['reason']}")
                continue
            r, out = _time_backend(backend, x_all[:b], warmup, repeats)
            r.precision = precision
            r.max_abs_dp_vs_cpu_fp32 = _max_abs_dp(out, reference)
            results.append(r)
            log(f"tensorrt {precision} batch {b}: {r.throughput:.1f} windows/s")
    finally:
        backend.deactivate()  # frees the buffers and releases the device
    return results, skipped


def _fitting_engine(
    model_dir: Path, precision: str, trt: Any, cudart: Any, device_id: int
) -> tuple[Any, Any, Any]:
    """The engine artifact to time, the TensorRT module of its flavour and the CUDA API;
    :class:`GpuUnavailable` saying why there is none. The backend verifies the engine
    against this GPU and TensorRT when it activates."""
    from mrm_edge.runtime.backends.base import BackendUnavailable
    from mrm_edge.runtime.backends.cuda import api as cuda_api
    from mrm_edge.runtime.backends.tensorrt.capability import (
        RTX,
        STANDARD,
        flavour_of,
        import_tensorrt,
        probe_flavours,
        probe_gpu,
    )

    try:
        cuda = cuda_api.as_cuda_api(cudart)
    except (BackendUnavailable, RuntimeError) as e:
        raise GpuUnavailable(f"tensorrt: {getattr(e, 'reason', None) or e}") from e
    gpu, why = probe_gpu(device_id, cuda)
    if gpu is None:
        raise GpuUnavailable(f"tensorrt: no GPU ({why})")
    infos = probe_flavours({flavour_of(trt): trt} if trt is not None else None)
    versions = {f: (i.version if i.available else None) for f, i in infos.items()}
    if not any(versions.values()):
        raise GpuUnavailable(f"tensorrt: {infos[STANDARD].reason}")
    art = find_engine(Path(model_dir), precision, gpu, versions[STANDARD], versions[RTX])
    flavour = art.key.get("flavour", STANDARD)
    try:
        trt = trt if trt is not None and flavour_of(trt) == flavour else import_tensorrt(flavour)
    except RuntimeError as e:
        raise GpuUnavailable(f"tensorrt {precision}: {first_line(e, with_type=False)}") from e
    return art, trt, cuda


def _out_of_profile(engine: str, precision: str, b: int, lo: int, hi: int) -> dict[str, Any]:
    reason = (
        f"batch {b} outside the engine's profile {lo}..{hi} ({engine}; rebuild with "
        "`mrm-edge export --engine --batch MIN,OPT,MAX`)"
    )
    return {"backend": "tensorrt", "precision": precision, "batch_size": b, "reason": reason}


def _time_backend(
    backend: Any, x: np.ndarray, warmup: int, repeats: int
) -> tuple[Result, np.ndarray]:
    """One batch size: warmup + repeats calls of ``backend.infer``, timed by its events."""
    for _ in range(warmup):
        backend.infer(x)
    ms = np.empty((repeats, 4))  # [repeats, (h2d, compute, d2h, e2e)]
    for i in range(repeats):
        out = backend.infer(x)
        ms[i] = backend.last_stages_ms()
    r = summarise("tensorrt", "", backend.device, len(x), ms[:, 1] / 1e3)
    r.timing = (
        "CUDA events on one stream, inside the monitor's TensorRTBackend.infer: enqueue "
        "(execute_async_v3) device time; H2D and D2H from pinned memory apart (h2d_ms, "
        "d2h_ms); end_to_end_ms = first to last event"
    )
    r.h2d_ms = percentiles_ms(ms[:, 0])
    r.d2h_ms = percentiles_ms(ms[:, 2])
    r.end_to_end_ms = percentiles_ms(ms[:, 3])
    return r, out
