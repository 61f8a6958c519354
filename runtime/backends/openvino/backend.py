"""OpenVINO backend (loader + runner in one class): an ONNX file compiled for the CPU plugin,
every setting stated and compiled models cached (docs/cpu-runtimes.md). ``openvino`` is
imported in ``activate()`` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from mrm_edge.runtime.backends.base import Backend, BackendUnavailable, precision_from_filename
from mrm_edge.runtime.backends.openvino.capability import cpu_bf16, probe_openvino
from mrm_edge.runtime.user_cache import usable_cores, user_cache_dir

from mrm_edge.errors import first_line

INFERENCE_PRECISIONS = {"f32": "fp32", "bf16": "bf16"}


class OpenVinoBackend(Backend):
    """Run an ONNX model with OpenVINO.

    Args:
        onnx_path: the model (input ``[batch, leads, samples]`` float32, one output).
        inference_precision: ``"f32"`` or ``"bf16"`` (refused on CPUs without native BF16).
        cache_dir: ``CACHE_DIR`` (None: ``<user cache>/openvino``; False: no cache).
        device: OpenVINO device (``"CPU"``; others untested).
        precision: label for reports; default ``bf16`` for the bf16 hint, else from the file.
    """

    name = "openvino"

    def __init__(
        self,
        onnx_path: Path,
        inference_precision: Literal["f32", "bf16"] = "f32",
        cache_dir: Path | Literal[False] | None = None,
        device: str = "CPU",
        precision: str | None = None,
    ) -> None:
        super().__init__()
        if inference_precision not in INFERENCE_PRECISIONS:
            raise ValueError(f"inference_precision {inference_precision!r}: expected f32 or bf16")
        self.onnx_path = Path(onnx_path)
        self.inference_precision = inference_precision
        self.cache_dir = cache_dir
        self.ov_device = device
        self.device = device.lower()
        if precision is None:
            precision = "bf16" if inference_precision == "bf16" else None
        self.precision = precision or precision_from_filename(self.onnx_path)
        self.version: str | None = None
        self._compiled: Any = None
        self._request: Any = None

    def config(self) -> dict[str, Any]:
        """The compile properties, every one stated (docs/cpu-runtimes.md)."""
        return {
            "INFERENCE_PRECISION_HINT": self.inference_precision,
            "INFERENCE_NUM_THREADS": usable_cores(),  # every core this process may use
            "NUM_STREAMS": 1,  # the monitor sends one batch at a time
            "PERFORMANCE_HINT": "LATENCY",
        }

    def _activate(self) -> None:
        if not self.onnx_path.is_file():
            raise FileNotFoundError(f"{self.onnx_path}: no such ONNX file")
        info = probe_openvino()
        if not info.available:
            raise BackendUnavailable(self.name, str(info.reason))
        core = info.module.Core()
        if self.inference_precision == "bf16" and self.ov_device == "CPU":
            ok, why = cpu_bf16(info)
            if not ok:
                raise BackendUnavailable(self.name, f"BF16 refused: {why}")
        if self.cache_dir is not False:
            cache = Path(self.cache_dir or user_cache_dir("openvino"))
            cache.mkdir(parents=True, exist_ok=True)
            core.set_property({"CACHE_DIR": str(cache)})
        try:
            model = core.read_model(str(self.onnx_path))
        except Exception as e:
            first = first_line(e, with_type=False)
            raise ValueError(f"{self.onnx_path}: OpenVINO cannot read it ({first})") from e
        inputs, outputs = model.inputs, model.outputs
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(
                f"{self.onnx_path}: expected one input and one output, found "
                f"{len(inputs)} and {len(outputs)}"
            )
        shape = inputs[0].get_partial_shape()
        self.input_name = inputs[0].get_any_name()
        self.output_name = outputs[0].get_any_name()
        self.input_dims = tuple(d.get_length() if d.is_static else None for d in list(shape)[1:])
        self.version = info.version
        try:  # one compiled model with a dynamic batch (docs/cpu-runtimes.md)
            self._compiled = core.compile_model(model, self.ov_device, self.config())
        except Exception as e:
            first = first_line(e, with_type=False)
            raise BackendUnavailable(
                self.name, f"OpenVINO cannot compile {self.onnx_path.name} ({first})"
            ) from e
        self._request = self._compiled.create_infer_request()

    def _infer(self, x: np.ndarray) -> np.ndarray:
        out = self._request.infer({0: x})
        # The output tensor is the request's own buffer, reused by the next call: copy it.
        return np.array(out[0], dtype=np.float32, copy=True)

    def _deactivate(self) -> None:
        self._request = None
        self._compiled = None

    def describe(self) -> str:
        return (
            f"{super().describe()}, OpenVINO {self.version} ({self.inference_precision}, "
            f"dynamic shapes, {self.config()['INFERENCE_NUM_THREADS']} threads)"
        )
