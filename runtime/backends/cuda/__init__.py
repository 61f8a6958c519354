"""CUDA for the TensorRT backend, the GPU benchmark and the GPU probe: one small interface
(``api.CudaApi``), two bindings (``cuda_python``, the default; ``pycuda_api``), and the
resources on top (``resources``). Importing this package imports neither binding.
"""
