"""TensorRT engines from the exported ONNX (installed as ``mrm_edge.export.tensorrt``);
docs/architecture.md lists its modules, docs/export.md says what ran against a real TensorRT.

Importing this package imports neither tensorrt nor cuda-python nor torch. What this
machine's TensorRT and GPU can do, whether an engine fits them, and the CUDA interface live in
the runtime (``mrm_edge.runtime.backends.tensorrt``, ``.cuda``), which export imports.
"""
