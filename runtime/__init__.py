"""Streaming runtime (installed as ``mrm_edge.runtime``).

This package must stay importable without torch: an edge install is numpy,
scipy and onnxruntime (plus TensorRT and CUDA bindings on GPUs). The streaming
pipeline itself arrives with the monitor; tests/test_packaging.py guards the
torch-free import.
"""
