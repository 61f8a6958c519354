"""Calibration stage (installed as ``mrm_edge.calibration``): INT8 calibration data."""
