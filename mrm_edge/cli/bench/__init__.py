"""``mrm-edge bench``: model-level throughput and latency per backend, precision and batch
size against PyTorch eager FP32, accuracy agreement, and the streaming capacity of the
runtime.

============  ================================================================================
module        what
============  ================================================================================
common        the :class:`~mrm_edge.cli.bench.common.Result` row, machine facts, timing loop, JSON
variants      backend names, ``--backends`` / ``--precisions`` checks, GPU availability, plan
cpu           CPU rows (PyTorch eager FP32, ONNX Runtime CPU) and the one CPU backend factory
accuracy      every variant against PyTorch FP32 on the same windows
torch_cuda    PyTorch eager on CUDA (the GPU baseline)
gpu           ONNX Runtime CUDA and TensorRT rows
peak          the GPU's measured matmul peak
gpu_run       every GPU row, and why any could not run
flops         FLOPs per window of the ONNX graph; achieved GFLOP/s and fraction of peak
streaming     streaming capacity through the real runtime
plot          throughput vs batch size (PNG)
============  ================================================================================

GPU backends (``torch-cuda``, ``onnxruntime-cuda``, ``tensorrt``) are probed
(:func:`~mrm_edge.cli.bench.variants.gpu_unavailable`); when unavailable they are reported under
``skipped`` with the reason. None of the GPU timing has run on this project's machines (no
GPU): TensorRT only against the test doubles, ONNX Runtime CUDA only up to its refusal.
"""
