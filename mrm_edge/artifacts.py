"""The ONNX files of a model directory: one file name and one precision per variant.

This is the one place that says which file holds which variant; ``mrm-edge export`` writes
these names, and the runtime, the bench and the doctor read them. Torch-free, imports
nothing but the standard library.

A *variant* names a file; a *precision* names the arithmetic. The two INT8 variants share
the precision ``"int8"`` but differ in quantization scheme, because the runtimes that make
INT8 fast want different graphs (see ``mrm_edge.export.int8``):

=========  =======================  =========  ============================================
variant    file                     precision  for
=========  =======================  =========  ============================================
fp32       model.onnx               fp32       the reference every other variant is gated
                                               against; any runtime
fp16       model.fp16.onnx          fp16       GPUs (ONNX Runtime CUDA, TensorRT)
int8       model.int8.onnx          int8       ONNX Runtime CPU: uint8 asymmetric
                                               activations, int32 biases (fast on x86)
int8-sym   model.int8-sym.onnx      int8       TensorRT and OpenVINO: symmetric int8
                                               activations and weights, float biases
=========  =======================  =========  ============================================

TensorRT's ONNX parser rejects ``model.int8.onnx`` (its int32 bias DequantizeLinear); ONNX
Runtime CPU runs ``model.int8-sym.onnx`` with float convolutions, so no faster than FP32.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ONNX_FILES",
    "PRECISION_OF",
    "VARIANTS",
    "OnnxVariant",
    "onnx_file",
    "precision_of",
    "variants_for",
]


@dataclass(frozen=True)
class OnnxVariant:
    """One ONNX file of a model directory."""

    name: str
    file: str
    precision: str
    purpose: str


VARIANTS: dict[str, OnnxVariant] = {
    v.name: v
    for v in (
        OnnxVariant(
            "fp32",
            "model.onnx",
            "fp32",
            "FP32 reference: what PyTorch computes, gated to 1e-5; every other file is gated "
            "against it",
        ),
        OnnxVariant(
            "fp16",
            "model.fp16.onnx",
            "fp16",
            "mixed precision for GPUs: FP16 except LayerNormalization, ReduceMean and "
            "Sigmoid; FP32 input and output",
        ),
        OnnxVariant(
            "int8",
            "model.int8.onnx",
            "int8",
            "INT8 for ONNX Runtime CPU: uint8 asymmetric activations, int8 per-channel "
            "weights, int32 biases (ONNX Runtime fuses it into QLinear kernels)",
        ),
        OnnxVariant(
            "int8-sym",
            "model.int8-sym.onnx",
            "int8",
            "INT8 for TensorRT and OpenVINO: symmetric int8 activations and per-channel "
            "weights, float biases, Q/DQ on the inputs of Conv/Gemm/MatMul",
        ),
    )
}
#: Variant → file name, in the order `mrm-edge export` writes them.
ONNX_FILES: dict[str, str] = {name: v.file for name, v in VARIANTS.items()}
#: Variant → precision (both INT8 variants are ``"int8"``).
PRECISION_OF: dict[str, str] = {name: v.precision for name, v in VARIANTS.items()}


def _variant(variant: str) -> OnnxVariant:
    try:
        return VARIANTS[variant]
    except (KeyError, TypeError):
        raise ValueError(
            f"ONNX variant {variant!r}: expected one of {', '.join(VARIANTS)}"
        ) from None


def onnx_file(variant: str) -> str:
    """The file name of ``variant`` (``"int8-sym"`` → ``"model.int8-sym.onnx"``)."""
    return _variant(variant).file


def precision_of(variant: str) -> str:
    """The precision of ``variant`` (``"int8-sym"`` → ``"int8"``)."""
    return _variant(variant).precision


def variants_for(precision: str) -> tuple[str, ...]:
    """The variants of ``precision``, in table order (``"int8"`` → ``("int8", "int8-sym")``)."""
    return tuple(name for name, v in VARIANTS.items() if v.precision == precision)
