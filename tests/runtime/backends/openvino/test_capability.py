"""What OpenVINO can do here: BF16 detection from the plugin's capabilities and the CPU flags,
and the refusal when OpenVINO is missing (a real missing import, in a subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mrm_edge.runtime.backends.openvino.capability import bf16_support, cpu_flags

# Runs a script with `openvino` blocked (sys.modules entry None: `import openvino` raises
# ImportError exactly as on an edge install without the extra).
BLOCKED = "import sys; sys.modules['openvino'] = None\n"


def run_blocked(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKED + code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def test_bf16_from_capabilities_or_flags() -> None:
    assert bf16_support(["FP32", "BF16", "INT8"], [])[0]
    ok, why = bf16_support(None, ["avx2", "amx_bf16", "amx_tile"])
    assert ok and why == "CPU flags amx_bf16"
    ok, why = bf16_support(["FP32", "INT8", "BIN"], ["avx2", "avx512f"])
    assert not ok
    assert why.startswith("this CPU has no native BF16 (no amx_bf16 or avx512_bf16 flag")
    assert "FP32, INT8, BIN" in why and "\n" not in why


def test_cpu_flags_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx2 avx512_bf16\n")
    assert cpu_flags(info) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "none") == frozenset()


def test_without_openvino_the_backend_is_refused_and_auto_goes_on(tmp_path: Path) -> None:
    code = (
        "from mrm_edge.runtime.backends import BackendUnavailable\n"
        "from mrm_edge.runtime.backends.openvino.backend import OpenVinoBackend\n"
        "from mrm_edge.runtime.model import DeployedModel\n"
        "from mrm_edge.runtime.selection import plan_backends, select_backend\n"
        "from mrm_edge.artifacts import SHIPPED_MODEL_DIR as D\n"
        "try:\n"
        "    OpenVinoBackend(D / 'model.onnx').activate()\n"
        "except BackendUnavailable as e:\n"
        "    print('ACTIVATE', e)\n"
        "m = DeployedModel.load(D)\n"
        "cands, skipped = plan_backends(m, 'openvino')\n"
        "print('CANDS', len(cands)); print('SKIPPED', skipped)\n"
        "b, why = select_backend(m, auto_probe=False)\n"
        "print('AUTO', b.name)\n"
        "try:\n"
        "    select_backend(m, 'openvino')\n"
        "except BackendUnavailable as e:\n"
        "    print('EXPLICIT', e)\n"
    )
    r = run_blocked(code, tmp_path)
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(" ", 1) for line in r.stdout.strip().splitlines())
    hint = "pip install 'mrm-edge[openvino]'"
    assert lines["ACTIVATE"].startswith("openvino: OpenVINO is not installed (")
    assert hint in lines["ACTIVATE"]
    assert lines["CANDS"] == "0" and hint in lines["SKIPPED"]
    assert lines["AUTO"] == "onnxruntime"  # the edge install keeps working without it
    assert lines["EXPLICIT"].startswith("openvino: OpenVINO is not installed")


def test_the_cli_refuses_an_explicit_openvino_without_it(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from mrm_edge.cli import main\n"
        "sys.argv = ['mrm-edge', 'monitor', '--backend', 'openvino', '--streams', '1',\n"
        "            '--duration', '11', '--speed', 'max', '--no-ui']\n"
        "main()\n"
    )
    r = run_blocked(code, tmp_path)
    assert r.returncode != 0
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "OpenVINO is not installed" in err[0], r.stderr
    assert "pip install 'mrm-edge[openvino]'" in err[0] and "Traceback" not in r.stderr
