"""``mrm-edge doctor``: the end-to-end TensorRT self-check a user runs on their GPU machine
(its steps and verdicts: docs/export.md)."""
