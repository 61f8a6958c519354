"""INT8 export: explicit (Q/DQ) static quantization of the FP32 ONNX model, with an accuracy
gate; no torch. Map: docs/architecture.md."""
