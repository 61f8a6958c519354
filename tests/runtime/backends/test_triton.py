"""The Triton backend against a real tritonserver on loopback (tests/triton_fixtures.py):
parity with in-process ONNX Runtime, the identity check, request splitting, an unreachable
server, and the ``triton:HOST:PORT`` form."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from mrm_edge.runtime.backends.base import BackendUnavailable
from mrm_edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
from mrm_edge.runtime.backends.triton import (
    ServedModelMismatch,
    TritonBackend,
    TritonTarget,
    parse_target,
)
from mrm_edge.runtime.model import DeployedModel
from mrm_edge.runtime.selection import activate_backend, plan_backends

from mrm_edge.artifacts import SHIPPED_MODEL_DIR
from mrm_edge.served_identity import identity_mismatch, model_identity
from tests.triton_fixtures import Served, free_port, need_triton


def _windows(n: int, seed: int = 0) -> np.ndarray:
    """``n`` synthetic 10 s ECG windows at 100 Hz (mV), each from its own patient."""
    from mrm_edge.data.synthetic import make_patients, synthesize

    return np.stack([synthesize(p, 10.0, fs=100) for p in make_patients(n, seed=seed)])


def test_parse_target_accepts_host_port_and_model() -> None:
    assert parse_target("127.0.0.1:8001") == TritonTarget("127.0.0.1", 8001, None)
    assert parse_target("triton-a.ward:9001/m-cpu-fp32") == TritonTarget(
        "triton-a.ward", 9001, "m-cpu-fp32"
    )
    assert parse_target("[::1]:8001").url == "[::1]:8001"


@pytest.mark.parametrize("text", ["", "host", "host:", ":8001", "host:port", "h:70000", "h:1/"])
def test_parse_target_refuses_malformed_addresses_in_one_line(text: str) -> None:
    with pytest.raises(ValueError, match=r"triton:HOST:PORT|not in 1\.\.65535") as e:
        parse_target(text)
    assert "\n" not in str(e.value)


def test_identity_mismatch_names_what_differs() -> None:
    model = DeployedModel.load(SHIPPED_MODEL_DIR)
    mine = model_identity(model)
    assert identity_mismatch(mine, dict(mine)) is None
    other = {**mine, "mrm_edge.labels": '["A", "B"]', "mrm_edge.onnx_sha256": "ab" * 32}
    why = identity_mismatch(mine, other)
    assert why is not None and "labels" in why and "onnx sha256" in why
    assert "no mrm-edge identity" in (identity_mismatch(mine, {"other": "x"}) or "")


def test_parity_with_in_process_onnxruntime_fp32(triton_served: Served) -> None:
    model = DeployedModel.load(triton_served.shipped)
    target = parse_target(f"{triton_served.server.grpc_address}/{triton_served.shipped_model}")
    x = _windows(5)
    with (
        TritonBackend(target, model_identity(model)) as remote,
        OnnxRuntimeBackend(model.onnx["fp32"].path, providers=["CPUExecutionProvider"]) as local,
    ):
        assert remote.precision == "fp32" and remote.input_dims == (12, 1000)
        p_remote, p_local = remote.infer(x), local.infer(x)
    assert p_remote.shape == (5, 5) and p_remote.dtype == np.float32
    assert np.max(np.abs(p_remote - p_local)) <= 1e-5


def test_without_a_model_name_the_matching_served_model_is_chosen(triton_served: Served) -> None:
    # The server also serves the tiny model: only the shipped one carries this identity.
    model = DeployedModel.load(triton_served.shipped)
    backend, why, chain = activate_backend(model, triton_served.target)
    try:
        assert backend.model_name == triton_served.shipped_model  # type: ignore[attr-defined]
        assert "triton" in why
        # A remote server falls back to every local option, in auto's order.
        labels = [c.label for c in chain]
        auto = [c.label for c in plan_backends(model, "auto")[0]]
        assert labels == auto and labels[0].startswith("onnxruntime CPU")
    finally:
        backend.deactivate()


def test_a_wrong_model_behind_the_address_is_refused(triton_served: Served) -> None:
    model = DeployedModel.load(triton_served.shipped)
    wrong = f"{triton_served.target}/{triton_served.tiny_model}"
    with pytest.raises(ServedModelMismatch, match="not the model of") as e:
        activate_backend(model, wrong)
    assert "onnx sha256" in str(e.value) and "\n" not in str(e.value)
    # Asking for a precision the server does not serve is refused the same way.
    with pytest.raises(ServedModelMismatch, match=r"precision fp32 \(asked for int8\)"):
        activate_backend(model, triton_served.target, "int8")


def test_batches_above_the_server_max_are_split(triton_served: Served) -> None:
    model = DeployedModel.load(triton_served.tiny)
    target = parse_target(f"{triton_served.server.grpc_address}/{triton_served.tiny_model}")
    x = _windows(70, seed=1)
    with (
        TritonBackend(target, model_identity(model), max_in_flight=2) as remote,
        OnnxRuntimeBackend(model.onnx["fp32"].path, providers=["CPUExecutionProvider"]) as local,
    ):
        assert remote.max_batch == 32  # so 70 windows go as three requests, two at a time
        assert np.max(np.abs(remote.infer(x) - local.infer(x))) <= 1e-5


def test_an_unreachable_server_is_unavailable_in_one_line(tiny_model) -> None:
    need_triton()
    model = DeployedModel.load(tiny_model)
    target = parse_target(f"127.0.0.1:{free_port()}")
    backend = TritonBackend(target, model_identity(model), timeout_s=2.0)
    assert not backend.reachable()
    with pytest.raises(BackendUnavailable) as e:
        backend.activate()
    assert "UNAVAILABLE" in str(e.value) and "\n" not in str(e.value)


def test_malformed_remote_backend_is_a_one_line_error() -> None:
    model = DeployedModel.load(SHIPPED_MODEL_DIR)
    with pytest.raises(ValueError, match="expected triton:HOST:PORT"):
        plan_backends(model, "triton:nohost")
    with pytest.raises(ValueError, match=r"triton:HOST:PORT\[/MODEL\]"):
        plan_backends(model, "tritonn")
    # auto never plans a remote backend (it has no address).
    assert all(c.family != "triton" for c in plan_backends(model, "auto")[0])


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_the_backend_module_imports_no_client_server_or_torch() -> None:
    r = _run(
        "import sys, mrm_edge.runtime.backends.triton, mrm_edge.runtime.selection; "
        "print([m for m in ('tritonclient', 'pytriton', 'torch', 'grpc') if m in sys.modules])"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_without_tritonclient_the_reason_names_the_extra(tiny_model) -> None:
    r = _run(
        "import sys; sys.modules['tritonclient'] = None\n"
        "from mrm_edge.runtime.model import DeployedModel\n"
        "from mrm_edge.runtime.selection import activate_backend\n"
        f"m = DeployedModel.load({str(tiny_model)!r})\n"
        "try:\n"
        "    activate_backend(m, 'triton:127.0.0.1:8001')\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("BackendUnavailable")
    assert "pip install 'mrm-edge[triton]'" in r.stdout


def test_without_nvidia_pytriton_serve_names_the_extra() -> None:
    r = _run(
        "import sys; sys.modules['pytriton'] = None\n"
        "from mrm_edge.cli.serve.server import find_tritonserver\n"
        "try:\n"
        "    find_tritonserver()\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    assert r.returncode == 0, r.stderr
    assert "ServeUnavailable" in r.stdout and "pip install 'mrm-edge[triton-server]'" in r.stdout
