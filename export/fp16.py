"""FP32 ONNX → mixed-precision FP16 ONNX: FP16 compute, FP32 I/O, FP32 islands for
:data:`KEEP_FP32_OPS` with casts at their boundaries (why these ops: docs/export.md, "FP16")."""

from __future__ import annotations

import warnings
from pathlib import Path

from mrm_edge.export.onnx_fp32 import set_metadata

KEEP_FP32_OPS: tuple[str, ...] = ("LayerNormalization", "ReduceMean", "Sigmoid")


def convert_fp16(fp32_path: Path, out_path: Path) -> Path:
    import onnx
    from onnxconverter_common import float16

    model = onnx.load(str(fp32_path))
    # The converter's default block list is generic (it keeps e.g. Resize,
    # TopK in FP32); ours is specific to this graph and is recorded.
    block = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(KEEP_FP32_OPS))
    with warnings.catch_warnings():
        # One warning per constant below FP16's smallest normal (e.g. BN variances of
        # ~1e-8, clamped to 1e-7): expected, and the accuracy gate measures the effect.
        warnings.filterwarnings("ignore", message="the float32 number", category=UserWarning)
        half = float16.convert_float_to_float16(
            model, keep_io_types=True, op_block_list=block, disable_shape_infer=False
        )
    set_metadata(half, {"precision": "fp16", "fp16_kept_fp32_ops": ",".join(KEEP_FP32_OPS)})
    onnx.save(half, str(out_path))
    onnx.checker.check_model(str(out_path), full_check=True)
    return Path(out_path)
