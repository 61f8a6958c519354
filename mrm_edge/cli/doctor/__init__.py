"""``mrm-edge doctor``: the end-to-end TensorRT self-check a user runs on their GPU machine.

What it does, each step reported with its result or the reason it failed (never a traceback):

1. model: the card and the ONNX files (``model.onnx`` as the FP32 reference, and
   ``model.fp16.onnx`` / ``model.int8-sym.onnx`` / ``model.onnx`` for the chosen precision:
   INT8 engines are built from the symmetric file, the one TensorRT's parser accepts, see
   ``mrm_edge.artifacts``);
2. windows: synthetic 12-lead windows at the card's sampling rate and window length
   (``mrm_edge.data.synthetic``: varied rhythms, rates, axes and noise);
3. reference: ONNX Runtime FP32 on CPU on those windows; and, for fp16 / int8, the same
   windows through the precision's ONNX on ONNX Runtime (how much the graph itself moves);
4. tensorrt, gpu: what ``probe_tensorrt`` / ``probe_gpu`` find;
5. build: an engine for the chosen precision and batch profile (cached in ``out_dir`` when
   given, else in a temporary directory);
6. run: the engine through ``TensorRTBackend`` on the same windows (whole batch, and one
   window alone to check batch independence);
7. parity: max |Δp| against the reference and agreement of the thresholded labels.

Verdict and exit status: 0 PASS; 1 FAIL (a step failed, or parity outside tolerance); 2
UNAVAILABLE (TensorRT, cuda-python or a GPU is missing: the report says what to install;
the ONNX Runtime steps still run).

The tolerances below are starting points, not measurements: no TensorRT engine of MRM-Net has
been run by this project yet (no TensorRT on the development machines). The whole path has
only run against the test double (tests/test_doctor.py).
"""
