"""The roofline of a bench run: FLOPs per window counted from the ONNX graph
(:mod:`benchmarks.roofline.flops`), the machine's measured GEMM / matmul peaks
(:mod:`benchmarks.roofline.peaks`), and each row of ``mrm-edge bench --json`` as achieved
GFLOP/s and fraction of its peak. Run with ``python -m benchmarks.roofline`` (docs/benchmarks.md).
"""
