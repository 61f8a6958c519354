"""Calibration stage (installed as ``mrm_edge.calibration``): INT8 calibration windows from
real ECG and their activation ranges; no torch. Map: docs/architecture.md."""
