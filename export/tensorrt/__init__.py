"""TensorRT engines from the exported ONNX (installed as ``mrm_edge.export.tensorrt``); its
modules: docs/architecture.md. Imports neither tensorrt nor cuda-python nor torch."""
