"""Streaming runtime (installed as ``mrm_edge.runtime``): live multi-patient 12-lead ECG,
windowed, batched, classified. The modules and the data path: docs/architecture.md. It stays
importable without torch (tests/test_packaging.py guards it): the PyTorch reference backend
imports torch only when it is selected.
"""
