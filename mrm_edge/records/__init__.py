"""Reading ECG recordings of every registered format as one :class:`Recording`: 12 standard
leads in the model's order, mV, a rate (registry.py; the formats: docs/formats.md)."""

from mrm_edge.records.recording import Recording, cut_windows
from mrm_edge.records.registry import find_recordings, read_recording

__all__ = ["Recording", "cut_windows", "find_recordings", "read_recording"]
