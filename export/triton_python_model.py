"""The Python-backend model of a Triton repository (copied verbatim as ``<model>/1/model.py``
by :mod:`mrm_edge.export.triton_repo`): ONNX Runtime CPU inside Triton's Python backend stub,
so it imports only numpy, onnxruntime and ``triton_python_backend_utils``, never
``mrm_edge``. The requests of one ``execute`` run as one ONNX Runtime batch. Tensors cross the
stub by DLPack, whose header carries the dtype (why not ``as_numpy()``: docs/triton.md).
"""

from __future__ import annotations

import ctypes
import json
import os
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

# Triton's stub renames a DLPack capsule it consumed to "used_dlpack"; NumPy's capsule
# destructor only recognises "used_dltensor" and would print an error for every response.
# The stub frees the tensor itself, so the capsule is renamed to what NumPy expects.
_USED = ctypes.c_char_p(b"used_dltensor")
_set_name = ctypes.pythonapi.PyCapsule_SetName
_set_name.argtypes = [ctypes.py_object, ctypes.c_char_p]
_set_name.restype = ctypes.c_int


def _to_triton(name: str, array: np.ndarray) -> Any:
    capsule = np.ascontiguousarray(array, dtype=np.float32).__dlpack__()
    tensor = pb_utils.Tensor.from_dlpack(name, capsule)
    _set_name(capsule, _USED)
    return tensor


class TritonPythonModel:
    """ONNX Runtime CPU on the ONNX file named by the config's ``onnx_file`` parameter."""

    def initialize(self, args: dict[str, Any]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        here = os.path.join(args["model_repository"], args["model_version"])
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # Spin-waiting between operators is ONNX Runtime's default, as in-process; the
        # repository turns it off (``mrm-edge serve --no-spin``) where the server's cores are
        # shared with other busy work that spinning threads would take them from.
        spinning = params.get("allow_spinning", "1")
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
        threads = int(params.get("intra_op_threads", "0"))
        if threads > 0:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            os.path.join(here, params["onnx_file"]),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]

    def execute(self, requests: list[Any]) -> list[Any]:
        batches = [
            np.from_dlpack(pb_utils.get_input_tensor_by_name(r, self.input_name)) for r in requests
        ]
        x = np.concatenate(batches) if len(batches) > 1 else np.asarray(batches[0])
        p = self.session.run([self.output_name], {self.input_name: x})[0]
        responses, start = [], 0
        for b in batches:
            part = p[start : start + len(b)]
            start += len(b)
            responses.append(pb_utils.InferenceResponse([_to_triton(self.output_name, part)]))
        return responses

    def finalize(self) -> None:
        self.session = None
