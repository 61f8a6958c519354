"""The TensorRT backend (after Polygraphy's loader / runner split); docs/architecture.md lists
its modules. Importing this package imports neither tensorrt nor a CUDA binding."""
