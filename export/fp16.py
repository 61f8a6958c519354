"""FP32 ONNX → mixed-precision FP16 ONNX.

FP16 compute with FP32 inputs and outputs, and FP32 islands where FP16 is
known to break (NVIDIA's own list of traps and our measurement on MRM-Net):

- LayerNormalization: mean/variance over 128-512 channels overflow or lose
  digits in FP16;
- ReduceMean (global average pools, the attention's channel means): long sums;
- Sigmoid: the channel/spatial attention maps and the output probabilities,
  where FP16's 3 significant digits show up directly in |Δp|.

Casts are inserted at the island boundaries, so the graph is explicitly typed:
TensorRT 11 consumes it as a strongly typed network (no precision flags), and
ONNX Runtime runs it as is.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from mrm_edge.export.onnx_fp32 import set_metadata

KEEP_FP32_OPS: tuple[str, ...] = ("LayerNormalization", "ReduceMean", "Sigmoid")


def convert_fp16(
    fp32_path: Path, out_path: Path, keep_fp32_ops: tuple[str, ...] = KEEP_FP32_OPS
) -> Path:
    import onnx
    from onnxconverter_common import float16

    model = onnx.load(str(fp32_path))
    # The converter's default block list is generic (it keeps e.g. Resize,
    # TopK in FP32); ours is specific to this graph and is recorded.
    block = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(keep_fp32_ops))
    with warnings.catch_warnings():
        # One warning per constant below FP16's smallest normal (e.g. BN variances of
        # ~1e-8, clamped to 1e-7): expected, and the accuracy gate measures the effect.
        warnings.filterwarnings("ignore", message="the float32 number", category=UserWarning)
        half = float16.convert_float_to_float16(
            model, keep_io_types=True, op_block_list=block, disable_shape_infer=False
        )
    set_metadata(half, {"precision": "fp16", "fp16_kept_fp32_ops": ",".join(keep_fp32_ops)})
    onnx.save(half, str(out_path))
    onnx.checker.check_model(str(out_path), full_check=True)
    return Path(out_path)


__all__ = ["KEEP_FP32_OPS", "convert_fp16"]
