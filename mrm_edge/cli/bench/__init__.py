"""``mrm-edge bench``: throughput and latency per backend, precision and batch size against
PyTorch eager FP32, accuracy agreement, and the streaming capacity of the runtime
(docs/benchmarks.md; its modules: docs/architecture.md)."""
