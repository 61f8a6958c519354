"""``mrm-edge serve``: the model on a real Triton Inference Server on this machine
(docs/triton.md; its modules: docs/architecture.md)."""
