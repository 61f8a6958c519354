"""INT8 export tests (mirrors export/int8/): graph structure, placement, the gate and its sweep.

Shared fixtures are in conftest.py; they run on real held-out windows (``realdata``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper


def load_graph(path: Path) -> tuple[Any, dict[str, Any], dict[str, np.ndarray]]:
    """(model, output name → producing node, initializer name → array) of ``path``."""
    model = onnx.load(str(path))
    producer = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return model, producer, inits
