"""PyTorch eager on CUDA: the baseline of every GPU row (FP32, and FP16 by autocast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrm_edge.cli.bench.common import Log, Result, max_abs_dp, quiet, summarise
from mrm_edge.data.synthetic import make_windows
from mrm_edge.stats import percentiles_ms


def bench_torch_cuda(
    model_dir: Path,
    precision: str,
    batch_sizes: list[int],
    warmup: int = 3,
    repeats: int = 10,
    log: Log = quiet,
    reference: np.ndarray | None = None,
) -> list[Result]:
    """PyTorch eager on CUDA at ``precision``: FP32, or FP16 by autocast; device time by CUDA
    events, the pinned copies apart (the method: docs/benchmarks.md; never run on a GPU yet).
    ``reference`` (ONNX Runtime CPU FP32 on the same windows) fills ``max_abs_dp_vs_cpu_fp32``.
    """
    import torch

    from mrm_edge.card import ModelCard
    from mrm_edge.checkpoint import inference_model, load_model_dir

    card = ModelCard.load(model_dir)
    net, _ = load_model_dir(model_dir, "cuda")
    model = inference_model(net, card).to("cuda").eval()
    x_all = make_windows(card, max(batch_sizes))
    results: list[Result] = []
    for b in batch_sizes:
        host = torch.from_numpy(np.ascontiguousarray(x_all[:b])).pin_memory()
        dev = torch.empty(host.shape, dtype=host.dtype, device="cuda")
        out = torch.empty((b, len(card.labels)), dtype=torch.float32).pin_memory()

        def step(host=host, dev=dev, out=out) -> tuple[float, ...]:
            e0, e1, e2, e3 = (torch.cuda.Event(enable_timing=True) for _ in range(4))
            e0.record()
            dev.copy_(host, non_blocking=True)
            e1.record()
            with (
                torch.inference_mode(),
                torch.autocast("cuda", dtype=torch.float16, enabled=precision == "fp16"),
            ):
                p = model(dev)
            e2.record()
            out.copy_(p, non_blocking=True)
            e3.record()
            e3.synchronize()
            return e0.elapsed_time(e1), e1.elapsed_time(e2), e2.elapsed_time(e3)

        for _ in range(warmup):
            step()
        ms = np.array([step() for _ in range(repeats)])  # [repeats, (h2d, compute, d2h)]
        r = summarise("torch-cuda", precision, "cuda:0", b, ms[:, 1] / 1e3)
        r.timing = (
            "CUDA events: model device time; host-to-device and device-to-host copies "
            "(pinned) apart"
        )
        r.h2d_ms = percentiles_ms(ms[:, 0])
        r.d2h_ms = percentiles_ms(ms[:, 2])
        r.end_to_end_ms = percentiles_ms(ms.sum(axis=1))
        r.max_abs_dp_vs_cpu_fp32 = max_abs_dp(out.numpy(), reference)
        results.append(r)
        log(f"torch-cuda {precision} batch {b}: {r.throughput:.1f} windows/s")
    return results
