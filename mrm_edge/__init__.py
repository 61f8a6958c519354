"""mrm-edge: MRM-Net 12-lead ECG classification from training to the bedside."""

__version__ = "0.1.0"
