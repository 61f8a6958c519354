"""Export stage (installed as ``mrm_edge.export``): ONNX and TensorRT artifacts."""
