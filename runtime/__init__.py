"""Streaming runtime (installed as ``mrm_edge.runtime``): live multi-patient 12-lead ECG,
windowed, batched, classified.

    sources/ → preprocess (resample.py, buffer.py, windower.py, quality.py) → batcher.py
    → backends/ → postprocess.py → sinks/        orchestrated by engine.py (the Monitor)

This package must stay importable without torch: an edge install is numpy, scipy and
onnxruntime (plus TensorRT and CUDA bindings on GPUs). tests/test_packaging.py guards it;
the PyTorch reference backend imports torch only when it is selected.
"""
