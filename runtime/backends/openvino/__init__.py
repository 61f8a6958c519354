"""OpenVINO backend (the ``openvino`` extra): ``capability`` (installed? native BF16?),
``backend`` (``OpenVinoBackend``: loader + runner, compiled-model cache), ``plan`` (its
options for ``auto`` and ``--backend openvino``, and its registration ``SPEC``).

Importing this package imports no openvino: the plan and the backend import it on use."""

from mrm_edge.runtime.backends.openvino.backend import OpenVinoBackend
from mrm_edge.runtime.backends.openvino.plan import SPEC

__all__ = ["SPEC", "OpenVinoBackend"]
