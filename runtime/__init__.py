"""Streaming runtime (installed as ``mrm_edge.runtime``): live multi-patient 12-lead ECG,
windowed, batched, classified.

    sources/ → stream/ (resample, buffer, windower, quality, preprocess) → batcher.py
    → backends/ (fallback.py: retry, then the next backend) → postprocess.py → sinks/
    engine.py runs that data path (the Monitor), accounting.py sees every window to one
    outcome, config.py holds its knobs (MonitorConfig), app.py puts model, backend chain,
    source and sinks together (open_monitor, run_monitor).

This package must stay importable without torch: an edge install is numpy, scipy and
onnxruntime (plus TensorRT and CUDA bindings on GPUs). tests/test_packaging.py guards it;
the PyTorch reference backend imports torch only when it is selected.
"""
