"""ONNX Runtime backend: CPU, or CUDA through the CUDA execution provider.

On CUDA the session runs with I/O binding: the input is bound from host memory (ORT copies
it to the device), the output is bound to CUDA memory and copied back once, which avoids
ORT's per-run output allocation and host round trips inside the graph. On CPU a plain
``session.run`` is the simplest and fastest path. ``onnxruntime`` is imported in
``activate()``, never at module import.

Executed here: the CPU execution provider, with and without I/O binding (the same binding
code path as CUDA, bound to CPU memory). Not executed here: the CUDA execution provider
(this machine has no GPU; it needs ``onnxruntime-gpu``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from mrm_edge.runtime.backends.base import Backend, BackendUnavailable, precision_from_filename

from mrm_edge.data.errors import first_line

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
# ORT's TensorRT provider needs libnvinfer and builds its own engines: the project uses its own
# TensorRT backend instead, so "auto" never picks it.
AUTO_ORDER = (CUDA, CPU)


class OnnxRuntimeBackend(Backend):
    """Run an ONNX model with ONNX Runtime.

    Args:
        onnx_path: the model (input ``[batch, leads, samples]`` float32, one output).
        providers: ``"auto"`` (CUDA when ORT has it, else CPU) or an explicit list of provider
            names; an explicit provider that is missing, or that ORT silently drops when
            creating the session, raises BackendUnavailable.
        intra_op_threads: ORT intra-op threads (None: ORT's default, all cores).
        io_binding: ``"auto"`` (on CUDA only), or force True / False.
        device_id: CUDA device for the CUDA provider.
        precision: label for reports; default from the file name (``model.fp16.onnx``).
    """

    name = "onnxruntime"

    def __init__(
        self,
        onnx_path: Path,
        providers: Literal["auto"] | list[str] = "auto",
        intra_op_threads: int | None = None,
        io_binding: Literal["auto"] | bool = "auto",
        device_id: int = 0,
        precision: str | None = None,
    ) -> None:
        super().__init__()
        self.onnx_path = Path(onnx_path)
        self.requested_providers = providers
        self.intra_op_threads = intra_op_threads
        self.io_binding = io_binding
        self.device_id = device_id
        self.precision = precision or precision_from_filename(self.onnx_path)
        self.providers: list[str] = []
        self._session: Any = None
        self._bind_device: str | None = None

    def _resolve_providers(self, available: list[str]) -> list[str]:
        if self.requested_providers == "auto":
            return [p for p in AUTO_ORDER if p in available]
        missing = [p for p in self.requested_providers if p not in available]
        if missing:
            raise BackendUnavailable(
                self.name,
                f"provider(s) {', '.join(missing)} not in this onnxruntime build "
                f"(available: {', '.join(available)}); for CUDA install onnxruntime-gpu",
            )
        return list(self.requested_providers)

    def _activate(self) -> None:
        if not self.onnx_path.is_file():
            raise FileNotFoundError(f"{self.onnx_path}: no such ONNX file")
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendUnavailable(self.name, f"onnxruntime is not installed ({e})") from e
        wanted = self._resolve_providers(list(ort.get_available_providers()))
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: ORT's warnings are not actionable here
        if self.intra_op_threads is not None:
            options.intra_op_num_threads = int(self.intra_op_threads)
        with_options: list[Any] = [
            (p, {"device_id": self.device_id}) if p == CUDA else p for p in wanted
        ]
        try:
            session = ort.InferenceSession(
                str(self.onnx_path), sess_options=options, providers=with_options
            )
        except Exception as e:
            first = first_line(e, with_type=False)
            raise ValueError(f"{self.onnx_path}: ONNX Runtime cannot load it ({first})") from e
        actual = list(session.get_providers())
        # ORT falls back to CPU with only a log line when the CUDA provider fails to load
        # (missing CUDA/cuDNN libraries): an explicit request must not silently run on CPU.
        dropped = [p for p in wanted if p not in actual]
        if dropped and self.requested_providers != "auto":
            raise BackendUnavailable(
                self.name,
                f"ONNX Runtime could not initialise {', '.join(dropped)} (running on {actual}); "
                "check the CUDA/cuDNN libraries onnxruntime-gpu needs",
            )
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(
                f"{self.onnx_path}: expected one input and one output, found "
                f"{[i.name for i in inputs]} and {[o.name for o in outputs]}"
            )
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        self.input_dims = tuple(d if isinstance(d, int) else None for d in inputs[0].shape[1:])
        on_cuda = CUDA in actual
        self.device = f"cuda:{self.device_id}" if on_cuda else "cpu"
        self.providers = actual
        use_binding = on_cuda if self.io_binding == "auto" else bool(self.io_binding)
        self._bind_device = ("cuda" if on_cuda else "cpu") if use_binding else None
        self._session = session

    def _infer(self, x: np.ndarray) -> np.ndarray:
        if self._bind_device is None:
            return self._session.run([self.output_name], {self.input_name: x})[0]
        binding = self._session.io_binding()
        binding.bind_cpu_input(self.input_name, x)
        binding.bind_output(self.output_name, self._bind_device, self.device_id)
        self._session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def _deactivate(self) -> None:
        self._session = None


__all__ = ["OnnxRuntimeBackend"]
