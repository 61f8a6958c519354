"""Which bench rows can run: the backend names the bench knows, the checks of ``--backends``
and ``--precisions``, why a GPU backend cannot run here, and the plan of CPU variants and
GPU backends for a request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mrm_edge.artifacts import ONNX_FILES
from mrm_edge.card import WEIGHTS_FILE

# ``--precisions`` takes the variant names of mrm_edge.artifacts (``int8-sym``: the symmetric
# TensorRT / OpenVINO INT8 file), plus ``bf16``: a precision of the runtime on model.onnx
# (OpenVINO's inference precision, PyTorch autocast).
PRECISION_NAMES = (*ONNX_FILES, "bf16")


def row_file(backend: str, precision: str) -> str:
    """The model-directory file a bench row runs: the weights for PyTorch rows, else the
    variant's ONNX (``bf16`` runs ``model.onnx`` at BF16)."""
    if backend.startswith("torch"):
        return WEIGHTS_FILE
    return ONNX_FILES.get(precision, ONNX_FILES["fp32"])


CPU_BACKENDS = ("torch", "torch-compile", "onnxruntime", "openvino")
GPU_BACKENDS = ("torch-cuda", "onnxruntime-cuda", "tensorrt")


def check_backends(names: list[str]) -> None:
    """One-line ValueError for a backend name the bench does not know."""
    known = CPU_BACKENDS + GPU_BACKENDS
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(
            f"--backends: unknown backend(s) {', '.join(map(repr, bad))}; "
            f"expected a comma-separated list of {', '.join(known)}"
        )
    if not names:
        raise ValueError("--backends: empty list")


def check_precisions(names: list[str]) -> None:
    bad = [n for n in names if n not in PRECISION_NAMES]
    if bad or not names:
        raise ValueError(
            f"--precisions: unknown precision(s) {', '.join(map(repr, bad)) or '(none)'}; "
            f"expected a comma-separated list of {', '.join(PRECISION_NAMES)}"
        )


def cpu_unavailable(backend: str, precision: str) -> str | None:
    """Why the CPU row ``backend``/``precision`` is not timed here, or None."""
    import importlib.util

    if backend in ("torch", "torch-compile") and importlib.util.find_spec("torch") is None:
        return "torch is not installed (the `train` extra)"
    if backend == "openvino" and importlib.util.find_spec("openvino") is None:
        return "OpenVINO is not installed: pip install 'mrm-edge[openvino]'"
    if precision == "bf16":
        if backend == "onnxruntime":
            return "ONNX Runtime's CPU provider has no BF16 path (OpenVINO and PyTorch do)"
        from mrm_edge.cli.bench.torch_cpu import torch_bf16_refusal

        return torch_bf16_refusal()
    return None


def _cpu_rows(backend: str, precisions: list[str]) -> list[str]:
    """The precisions a CPU backend runs: PyTorch eager FP32 always (the baseline) and BF16
    autocast when asked; torch.compile FP32; the ONNX runtimes every precision asked."""
    if backend == "torch":
        return ["fp32", *(["bf16"] if "bf16" in precisions else [])]
    if backend == "torch-compile":
        return ["fp32"]
    return list(precisions)


def gpu_unavailable(backend: str, facts: Any = None) -> str | None:
    """Why the GPU ``backend`` cannot be benchmarked here, or None when its cheap
    preconditions hold (torch sees CUDA; onnxruntime has the CUDA provider; a TensorRT
    flavour imports and a GPU answers, in ``facts``: ``runtime.facts.MachineFacts``, probed
    when None). The benchmark functions still refuse, with the reason, what only shows later
    (a session falling back to the CPU, no engine)."""
    import importlib.util

    if backend == "torch-cuda":
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed"
        import torch

        if not torch.cuda.is_available():
            return f"torch {torch.__version__} sees no CUDA device"
        return None
    from mrm_edge.runtime.backends.tensorrt.capability import STANDARD
    from mrm_edge.runtime.facts import probe_machine

    facts = facts or probe_machine()
    if backend == "onnxruntime-cuda":
        if "CUDAExecutionProvider" not in facts.ort_providers:
            return "this onnxruntime build has no CUDAExecutionProvider (install onnxruntime-gpu)"
        return None
    found = [i for i in facts.tensorrt.values() if i.available]
    if not found:
        return str(facts.tensorrt[STANDARD].reason)
    if facts.gpu is None:
        return f"TensorRT {found[0].version} but no GPU ({facts.gpu_reason})"
    return None


@dataclass
class BenchPlan:
    """The CPU (backend, precision) rows to time, the GPU backends to try, and the backends
    skipped with the reason."""

    variants: list[tuple[str, str]] = field(default_factory=list)
    gpu_backends: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)


def plan(backends: list[str], precisions: list[str], facts: Any = None) -> BenchPlan:
    """CPU backends run every precision (PyTorch: :func:`_cpu_rows`); a CPU row that cannot
    run here (:func:`cpu_unavailable`: BF16 without a BF16 CPU, a missing runtime) and a GPU
    backend whose preconditions fail (:func:`gpu_unavailable`) are skipped with the reason.
    ValueError when nothing can run."""
    out = BenchPlan()
    for b in backends:
        if b in CPU_BACKENDS:
            for p in _cpu_rows(b, precisions):
                why = cpu_unavailable(b, p)
                if why is None:
                    out.variants.append((b, p))
                else:
                    out.skipped.append({"backend": b, "precision": p, "reason": why})
        else:
            why = gpu_unavailable(b, facts)
            if why is None:
                out.gpu_backends.append(b)
            else:
                out.skipped.append({"backend": b, "precision": None, "reason": why})
    return out
