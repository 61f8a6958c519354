"""GPU rows of `mrm-edge bench`: ONNX Runtime CUDA and TensorRT timing (the peak:
:mod:`mrm_edge.bench.peak`; PyTorch CUDA: :mod:`mrm_edge.bench.torch_cuda`; all of them
run by :func:`mrm_edge.bench.gpu_run.run_gpu`).

Timing (every row records its own method in ``timing``):

- **TensorRT**: one stream; timing events around the host-to-device copy, the enqueue
  (``execute_async_v3``) and the device-to-host copy of every call, from pinned host buffers.
  Throughput = batch / median enqueue time; ``h2d_ms`` and ``d2h_ms`` apart; ``end_to_end_ms``
  = first event to last. Device buffers are allocated once per batch size, outside the
  timed loop.
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

import contextlib
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mrm_edge.bench.common import Log, Result, input_windows, quiet, summarise
from mrm_edge.bench.variants import VARIANT_FILES
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
    """Time this GPU's ``precision`` engine at every batch size its profile admits.

    Returns the rows and the batch sizes skipped (outside the profile) with the reason.
    Raises :class:`GpuUnavailable` without TensorRT, a CUDA binding (cuda-python or pycuda),
    a GPU or a fitting engine. ``trt``: the module to use; ``cudart``: a CudaApi or a
    cuda-python runtime module (tests pass the test doubles)."""
    from mrm_edge.runtime.backends import cuda as cu

    art, trt, cuda = _fitting_engine(Path(model_dir), precision, trt, cudart, device_id)

    try:  # pycuda's context is popped however this ends (a no-op for cuda-python)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        engine = runtime.deserialize_cuda_engine(art.path.read_bytes())
        if engine is None:
            raise GpuUnavailable(f"tensorrt {precision}: {art.name} does not deserialize here")
        context = engine.create_execution_context()
        if context is None:
            raise GpuUnavailable(f"tensorrt {precision}: no execution context (GPU memory?)")
        (in_name, out_name), (in_dtype, out_dtype), (lo, hi) = _engine_io(trt, engine)
        x_all = input_windows(_model(Path(model_dir)).card, max(batch_sizes))
        results: list[Result] = []
        skipped: list[dict[str, Any]] = []
        try:
            with contextlib.ExitStack() as stack:
                stream = stack.enter_context(cu.Stream(cuda))
                ev = [stack.enter_context(cu.Event(cuda, timing=True)) for _ in range(4)]
                for b in batch_sizes:
                    shape = (b, *x_all.shape[1:])
                    if not lo[0] <= b <= hi[0] or not context.set_input_shape(in_name, shape):
                        skipped.append(_out_of_profile(art.name, precision, b, lo[0], hi[0]))
                        log(f"skipped tensorrt {precision} batch {b}: {skipped[-1]['reason']}")
                        continue
                    out_shape = tuple(int(d) for d in context.get_tensor_shape(out_name))
                    r, out = _time_engine(
                        cu,
                        cuda,
                        context,
                        stream,
                        ev,
                        (in_name, out_name),
                        x_all[:b],
                        (in_dtype, out_dtype),
                        out_shape,
                        warmup,
                        repeats,
                    )
                    r.precision = precision
                    r.device = f"cuda:{device_id}"
                    r.max_abs_dp_vs_cpu_fp32 = _max_abs_dp(out, reference)
                    results.append(r)
                    log(f"tensorrt {precision} batch {b}: {r.throughput:.1f} windows/s")
        finally:
            # TensorRT wants the context released before the engine, the engine before the runtime.
            del context
            del engine
            del runtime
        return results, skipped
    finally:
        cuda.close()


def _fitting_engine(
    model_dir: Path, precision: str, trt: Any, cudart: Any, device_id: int
) -> tuple[Any, Any, Any]:
    """The engine artifact to time, the TensorRT module of its flavour and the CUDA API (its
    device set); :class:`GpuUnavailable` saying why there is none."""
    from mrm_edge.runtime.backends import cuda as cu
    from mrm_edge.runtime.backends.base import BackendUnavailable
    from mrm_edge.runtime.backends.tensorrt.capability import (
        RTX,
        STANDARD,
        flavour_of,
        import_tensorrt,
        probe_flavours,
        probe_gpu,
    )
    from mrm_edge.runtime.backends.tensorrt.engine_file import EngineRefused, check_engine

    try:
        cuda = cu.as_cuda_api(cudart)
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
    try:
        check_engine(art.path, gpu.name, gpu.compute_capability, versions[STANDARD], versions[RTX])
        flavour = art.key.get("flavour", STANDARD)
        trt = trt if trt is not None and flavour_of(trt) == flavour else import_tensorrt(flavour)
    except (EngineRefused, RuntimeError) as e:
        raise GpuUnavailable(f"tensorrt {precision}: {first_line(e, with_type=False)}") from e
    cuda.set_device(device_id)
    return art, trt, cuda


def _engine_io(trt: Any, engine: Any) -> tuple[tuple[str, str], tuple[Any, Any], tuple[Any, Any]]:
    """(input, output) tensor names, their numpy dtypes, and the input profile's (min, max)."""
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    mode = engine.get_tensor_mode
    in_name = next(n for n in names if mode(n) == trt.TensorIOMode.INPUT)
    out_name = next(n for n in names if mode(n) == trt.TensorIOMode.OUTPUT)
    in_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(in_name)))
    out_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(out_name)))
    lo, _, hi = (tuple(int(d) for d in s) for s in engine.get_tensor_profile_shape(in_name, 0))
    return (in_name, out_name), (in_dtype, out_dtype), (lo, hi)


def _out_of_profile(engine: str, precision: str, b: int, lo: int, hi: int) -> dict[str, Any]:
    reason = (
        f"batch {b} outside the engine's profile {lo}..{hi} ({engine}; rebuild with "
        "`mrm-edge export --engine --batch MIN,OPT,MAX`)"
    )
    return {"backend": "tensorrt", "precision": precision, "batch_size": b, "reason": reason}


def _time_engine(
    cu: Any,
    cuda: Any,
    context: Any,
    stream: Any,
    ev: list[Any],
    io: tuple[str, str],
    x: np.ndarray,
    dtypes: tuple[np.dtype, np.dtype],
    out_shape: tuple[int, ...],
    warmup: int,
    repeats: int,
) -> tuple[Result, np.ndarray]:
    """One batch size: buffers allocated once, then warmup + repeats timed calls."""
    b = x.shape[0]
    with contextlib.ExitStack() as stack:
        host_in = stack.enter_context(cu.PinnedHostBuffer(x.shape, dtypes[0], cuda))
        host_out = stack.enter_context(cu.PinnedHostBuffer(out_shape, dtypes[1], cuda))
        dev_in = stack.enter_context(cu.DeviceBuffer(host_in.nbytes, cuda))
        dev_out = stack.enter_context(cu.DeviceBuffer(host_out.nbytes, cuda))
        np.copyto(host_in.array, x, casting="same_kind")
        context.set_tensor_address(io[0], dev_in.ptr)
        context.set_tensor_address(io[1], dev_out.ptr)
        e0, e1, e2, e3 = ev

        def step() -> tuple[float, float, float, float]:
            e0.record(stream)
            cu.memcpy_htod_async(cuda, dev_in.ptr, host_in.ptr, host_in.nbytes, stream)
            e1.record(stream)
            if not context.execute_async_v3(stream.handle):
                raise RuntimeError(f"tensorrt: execute_async_v3 failed at batch {b}")
            e2.record(stream)
            cu.memcpy_dtoh_async(cuda, host_out.ptr, dev_out.ptr, host_out.nbytes, stream)
            e3.record(stream)
            e3.synchronize()
            ms = cuda.event_elapsed_ms
            return ms(e0.raw, e1.raw), ms(e1.raw, e2.raw), ms(e2.raw, e3.raw), ms(e0.raw, e3.raw)

        for _ in range(warmup):
            step()
        ms = np.array([step() for _ in range(repeats)])  # [repeats, (h2d, compute, d2h, e2e)]
        out = np.array(host_out.array, dtype=np.float32, copy=True)
    r = summarise("tensorrt", "", "", b, ms[:, 1] / 1e3)
    r.timing = (
        "CUDA events on one stream: enqueue (execute_async_v3) device time; H2D and D2H from "
        "pinned memory apart (h2d_ms, d2h_ms); end_to_end_ms = first to last event"
    )
    r.h2d_ms = percentiles_ms(ms[:, 0])
    r.d2h_ms = percentiles_ms(ms[:, 2])
    r.end_to_end_ms = percentiles_ms(ms[:, 3])
    return r, out
