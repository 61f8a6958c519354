"""All GPU rows of ``mrm-edge bench``: :func:`run_gpu` runs every requested GPU backend
(PyTorch CUDA, ONNX Runtime CUDA, TensorRT) and says why any could not run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mrm_edge.artifacts import ONNX_FILES
from mrm_edge.cli.bench.common import Log, Result, cpu_reference, quiet
from mrm_edge.cli.bench.gpu import GpuUnavailable, bench_gpu_backend
from mrm_edge.cli.bench.torch_cuda import bench_torch_cuda
from mrm_edge.cli.bench.variants import gpu_unavailable
from mrm_edge.data.synthetic import make_windows

GPU_BATCH_SIZES = [1, 8, 32, 128, 256]


@dataclass
class GpuRun:
    """What :func:`run_gpu` measured, what it skipped and why, and the GPU's name."""

    results: list[Result] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)


def run_gpu(
    model_dir: Path,
    backends: list[str],
    precisions: list[str],
    batch_sizes: list[int],
    warmup: int = 3,
    repeats: int = 10,
    log: Log = quiet,
    *,
    facts: Any,
) -> GpuRun:
    """Every GPU backend in ``backends`` (torch-cuda, onnxruntime-cuda, tensorrt: those whose
    preconditions ``variants.plan`` found to hold) at every precision in ``precisions`` it
    has; what still cannot run goes to ``skipped`` with the reason. ``facts``: the machine
    (``runtime.facts.MachineFacts``), with the TensorRT and CUDA modules it describes (tests:
    the test doubles)."""
    from mrm_edge.card import ModelCard

    model_dir = Path(model_dir)
    run = GpuRun()
    fp32 = model_dir / ONNX_FILES["fp32"]
    reference = None
    if backends and fp32.is_file():  # only when some GPU backend runs
        x = make_windows(ModelCard.load(model_dir), max(batch_sizes))
        reference = cpu_reference(fp32, x)
    for name in backends:
        # PyTorch eager FP32 on the GPU is the baseline of every GPU row: always run it; INT8
        # is an ONNX / TensorRT variant (as on the CPU, torch rows are FP32 and FP16 only).
        wanted = ["fp32"] + (["fp16"] if "fp16" in precisions else [])
        for p in wanted if name == "torch-cuda" else precisions:
            try:
                if name == "torch-cuda":
                    rows = bench_torch_cuda(
                        model_dir, p, batch_sizes, warmup, repeats, log, reference=reference
                    )
                else:
                    rows, out_of_profile = bench_gpu_backend(
                        name,
                        model_dir,
                        p,
                        batch_sizes,
                        warmup,
                        repeats,
                        log,
                        reference=reference,
                        facts=facts,
                    )
                    run.skipped += out_of_profile
            except GpuUnavailable as e:
                run.skipped.append({"backend": name, "precision": p, "reason": str(e)})
                log(f"skipped {name} {p}: {e}")
                continue
            run.results += rows
    if run.results and gpu_unavailable("torch-cuda") is None:
        import torch

        run.machine["gpu"] = torch.cuda.get_device_name(0)
    return run
