"""``mrm-edge doctor --backend triton:...`` against the session's real tritonserver."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mrm_edge.cli.doctor.report import EXIT_FAIL, EXIT_PASS, EXIT_UNAVAILABLE
from mrm_edge.cli.doctor.triton import run_triton_doctor
from tests.triton_fixtures import Served, free_port, need_triton

MRM_EDGE = str(Path(sys.executable).parent / "mrm-edge")


def test_the_served_model_passes_against_onnxruntime_fp32(triton_served: Served) -> None:
    r = subprocess.run(
        [MRM_EDGE, "doctor", "--model", str(triton_served.shipped), "--backend",
         triton_served.target, "--windows", "3"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == EXIT_PASS, r.stdout + r.stderr
    assert "[ok]   server" in r.stdout and triton_served.shipped_model in r.stdout
    assert r.stdout.strip().splitlines()[-1].startswith("PASS: the served fp32 model")


def test_a_wrong_model_fails_and_no_server_is_unavailable(triton_served: Served) -> None:
    wrong = f"{triton_served.target}/{triton_served.tiny_model}"
    report = run_triton_doctor(triton_served.shipped, wrong, n_windows=2)
    assert report.exit_code == EXIT_FAIL and "not the model of" in report.verdict
    need_triton()
    gone = run_triton_doctor(triton_served.tiny, f"triton:127.0.0.1:{free_port()}", 2)
    assert gone.exit_code == EXIT_UNAVAILABLE and "UNAVAILABLE" in gone.verdict
