"""A backend is one module plus one ``register_backend`` line: the trivial numpy backend in
``tests/fakes/constant_backend.py``, registered here, is a ``--backend`` choice, is what
``select_backend`` returns for its name, and classifies a real monitor run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from mrm_edge.runtime import app
from mrm_edge.runtime.backends import registry
from mrm_edge.runtime.backends.registry import backend_choices, register_backend
from mrm_edge.runtime.model import DeployedModel
from mrm_edge.runtime.selection import select_backend
from mrm_edge.runtime.sources.base import ArraySource

from mrm_edge.artifacts import SHIPPED_MODEL_DIR
from mrm_edge.data.synthetic import make_patients, synthesize
from tests.fakes import constant_backend
from tests.fakes.constant_backend import ConstantBackend
from tests.runtime.test_model import make_model_dir


@pytest.fixture(autouse=True)
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test end with it."""
    monkeypatch.setattr(registry, "_SPECS", dict(registry._SPECS))


def test_built_in_backends_in_autos_order() -> None:
    assert backend_choices() == (
        "auto", "tensorrt", "onnxruntime", "openvino", "torch"
    )  # fmt: skip
    assert registry.cpu_backend_names() == ("onnxruntime", "openvino", "torch")
    with pytest.raises(ValueError, match="already registered"):
        register_backend(registry._SPECS["torch"])


def test_a_new_backend_is_one_module_and_one_registration(tmp_path: Path) -> None:
    register_backend(constant_backend.SPEC)
    model_dir = make_model_dir(tmp_path / "m")
    assert backend_choices() == (
        "auto", "constant", "tensorrt", "onnxruntime", "openvino", "torch"
    )  # fmt: skip

    backend, why = select_backend(DeployedModel.load(model_dir), "constant")
    assert isinstance(backend, ConstantBackend) and not backend.is_active
    assert why == "requested constant → constant fp32: the trivial numpy backend"

    recs = {
        p.patient_id: (np.ascontiguousarray(synthesize(p, 15.0, 100).T), 100)
        for p in make_patients(2, 0)
    }
    summary = app.run_monitor(
        model_dir, ArraySource(recs, speed=None), backend="constant", sinks=[]
    )
    assert summary.ok and summary.windows == summary.classified == 12


def test_the_cli_accepts_the_new_backend(tmp_path: Path) -> None:
    from mrm_edge.cli import main

    model_dir = make_model_dir(tmp_path / "m")
    args = ["monitor", "--model", str(model_dir), "--streams", "2", "--speed", "max"]
    args += ["--duration", "12", "--no-ui", "--backend", "constant"]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 2 and "'constant' is not one of" in refused.output

    register_backend(constant_backend.SPEC)
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "requested constant → constant fp32" in r.output


def test_the_gate_reads_the_figure_under_its_name_and_the_older_ones() -> None:
    """The export writes max |Δp| as ``max_abs_prob_delta`` only; sidecars written before
    (``max_abs_diff``: FP16 accuracy, ``max_abs_dp``: the BF16 record) still give the gate."""
    for key in ("max_abs_prob_delta", "max_abs_diff", "max_abs_dp"):
        assert registry.sidecar_gate({"accuracy": {key: 0.02}}, "fp16") == pytest.approx(0.03)
    assert registry.sidecar_gate({"accuracy": {}}, "int8") == registry.DEFAULT_GATES["int8"]
    # The shipped FP16 sidecar predates the one name: its figure still counts.
    fp16 = DeployedModel.load(SHIPPED_MODEL_DIR).onnx["fp16"].sidecar
    assert "max_abs_prob_delta" not in fp16["accuracy"]
    figure = fp16["accuracy"]["max_abs_diff"]
    assert registry.sidecar_gate(fp16, "fp16") == pytest.approx(1.5 * figure)
