"""CPU rows: PyTorch eager FP32 (the baseline), BF16 autocast and torch.compile, and ONNX
Runtime CPU and OpenVINO per exported variant; host wall clock around a synchronous call,
on the CPU the whole cost (the method: docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mrm_edge.cli.bench.common import Log, Result, quiet, summarise, time_calls
from mrm_edge.data.synthetic import make_windows

if TYPE_CHECKING:
    from mrm_edge.runtime.backends.base import Backend


def bench_model(
    model_dir: Path,
    variants: list[tuple[str, str]],
    batch_sizes: list[int],
    warmup: int = 3,
    repeats: int = 10,
    log: Log = quiet,
) -> list[Result]:
    """Run every CPU (backend, precision) in ``variants`` at every batch size; torch.compile
    rows get the compile time of their batch size in ``compile_s`` (the warm-up absorbs it)."""
    from mrm_edge.card import CARD_FILE, ModelCard
    from mrm_edge.cli.bench.variants import row_file
    from mrm_edge.runtime.selection import check_outputs

    card = ModelCard.load(model_dir)
    x_all = make_windows(card, max(batch_sizes))
    results: list[Result] = []
    for backend, precision in variants:
        be = cpu_backend(model_dir, backend, precision)
        be.activate()
        try:
            # Before any timing: what it outputs must be what the card says.
            row = f"{Path(model_dir) / row_file(backend, precision)} ({backend} {precision})"
            check_outputs(be, card, Path(model_dir) / CARD_FILE, row)
            for b in batch_sizes:
                x = np.ascontiguousarray(x_all[:b])
                times = time_calls(lambda x=x, f=be.infer: f(x), max(warmup, 1), repeats)
                r = summarise(backend, precision, "cpu", b, times)
                compiled = getattr(be, "compile_seconds", None)
                if compiled:
                    r.compile_s = compiled.get(b)
                results.append(r)
                extra = f" (compile {r.compile_s:.1f} s, not timed)" if r.compile_s else ""
                log(f"{backend} {precision} batch {b}: {r.throughput:.1f} windows/s{extra}")
        finally:
            be.deactivate()
    return results


def cpu_backend(model_dir: Path, backend: str, precision: str) -> Backend:
    """The runtime Backend (not activated) of a CPU ``backend``/``precision``: the one
    factory of the bench's CPU rows, its accuracy section and its streaming section (each
    registered backend's ``cpu_factory``, ``mrm_edge.runtime.backends.registry``)."""
    from mrm_edge.runtime.backends.registry import cpu_backend_names, make_cpu_backend

    if backend == "torch" and precision == "bf16":
        from mrm_edge.cli.bench.torch_cpu import TorchAutocastBackend

        return TorchAutocastBackend(model_dir)
    if backend == "torch-compile":
        from mrm_edge.cli.bench.torch_cpu import TorchCompiledBackend

        if precision != "fp32":
            raise ValueError("torch-compile runs FP32")
        return TorchCompiledBackend(model_dir)
    try:
        return make_cpu_backend(backend, model_dir, precision)
    except KeyError:
        known = " or ".join((*cpu_backend_names(), "torch-compile"))
        raise ValueError(f"unknown backend {backend!r}; expected {known}") from None
