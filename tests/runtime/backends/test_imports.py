"""The edge path stays light: importing the backends, the TensorRT export modules and the
doctor pulls in no torch and none of the heavy runtime libraries (they load on use)."""

import subprocess
import sys


def test_imports_are_lazy() -> None:
    code = (
        "import sys\n"
        "import mrm_edge.runtime.backends, mrm_edge.runtime.backends.tensorrt\n"
        "import mrm_edge.runtime.backends.onnxruntime, mrm_edge.runtime.backends.cuda\n"
        "import mrm_edge.runtime.backends.openvino, mrm_edge.runtime.cpu_timing\n"
        "import mrm_edge.export.tensorrt, mrm_edge.cli.doctor\n"
        "heavy = ('torch', 'onnxruntime', 'tensorrt', 'cuda', 'onnx', 'openvino')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
