"""The real ``tritonserver`` on this machine: the binary bundled in ``nvidia-pytriton``, run
directly on a model repository (:mod:`mrm_edge.export.triton_repo`), with the backend
directory PyTriton's launcher would arrange (why the binary, and how: docs/triton.md).
"""

from __future__ import annotations

import contextlib
import ctypes.util
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "pip install 'mrm-edge[triton-server]'"


class ServeUnavailable(RuntimeError):
    """No ``tritonserver`` here, or it did not come up (one-line message says why)."""


@dataclass(frozen=True)
class ServerPorts:
    http: int
    grpc: int
    metrics: int


@dataclass(frozen=True)
class TritonDist:
    """Where nvidia-pytriton's server files are."""

    binary: Path
    backends: Path
    stub: Path
    libs: Path


def find_tritonserver() -> TritonDist:
    """The bundled server's files, or :class:`ServeUnavailable` with the install hint."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServeUnavailable(f"tritonserver: nvidia-pytriton is not installed ({INSTALL_HINT})")
    root = Path(next(iter(spec.submodule_search_locations)))
    dist = root / "tritonserver"
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    found = TritonDist(
        binary=dist / "bin" / "tritonserver",
        backends=dist / "backends",
        stub=dist / "python_backend_stubs" / version / "triton_python_backend_stub",
        libs=root.parent / "nvidia_pytriton.libs",
    )
    for what, path in (("server binary", found.binary), ("Python backend stub", found.stub)):
        if not path.is_file():
            raise ServeUnavailable(f"tritonserver: {what} missing ({path}); {INSTALL_HINT}")
    # The stub embeds the interpreter through the shared libpython, which a Python built
    # without --enable-shared does not provide: without it every Python-backend model fails.
    if ctypes.util.find_library(f"python{version}") is None:
        raise ServeUnavailable(
            f"tritonserver: the Python backend stub needs libpython{version}.so.1.0, not found "
            f"(Debian/Ubuntu: apt-get install libpython{version})"
        )
    return found


def _backend_dir(dist: TritonDist, into: Path) -> Path:
    """A backend directory with the stub for this interpreter beside the Python backend."""
    python = into / "backends" / "python"
    python.mkdir(parents=True)
    for item in (dist.backends / "python").iterdir():
        if item.is_file():
            (python / item.name).symlink_to(item)
    shutil.copy2(dist.stub, python / "triton_python_backend_stub")
    return into / "backends"


class TritonServer:
    """A ``tritonserver`` process on ``repository`` (context manager: start, then stop).

    ``models`` names the models to load (explicit model control: a repository may hold
    models this server's backends cannot load). Its output goes to a log in its temporary
    folder, kept after a failed start so that its reason can be read."""

    def __init__(
        self,
        repository: str | Path,
        *,
        host: str = "127.0.0.1",
        ports: ServerPorts,
        models: Sequence[str],
        start_timeout_s: float = 120.0,
    ) -> None:
        self.repository = Path(repository)
        self.host = host
        self.ports = ports
        self.models = list(models)
        self.start_timeout_s = start_timeout_s
        self._log_path: Path | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def grpc_address(self) -> str:
        return f"{self.host}:{self.ports.grpc}"

    def _command(self, dist: TritonDist, backends: Path) -> list[str]:
        cmd = [
            str(dist.binary),
            f"--model-repository={self.repository}",
            f"--backend-directory={backends}",
            f"--http-address={self.host}",
            f"--grpc-address={self.host}",
            f"--metrics-address={self.host}",
            f"--http-port={self.ports.http}",
            f"--grpc-port={self.ports.grpc}",
            f"--metrics-port={self.ports.metrics}",
            "--exit-timeout-secs=10",
            "--model-control-mode=explicit",
        ]
        return cmd + [f"--load-model={m}" for m in self.models]

    def _env(self, dist: TritonDist) -> dict[str, str]:
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(dist.libs), env.get("LD_LIBRARY_PATH", "")) if p
        )
        # The stub embeds this interpreter: with this environment's bin first it finds this
        # environment's site-packages (numpy, onnxruntime).
        env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
        return env

    def start(self) -> TritonServer:
        """Start the server and wait until it is ready (bounded); ServeUnavailable with the
        server's last log line when it exits or does not become ready in time."""
        dist = find_tritonserver()
        self._tmp = tempfile.TemporaryDirectory(prefix="mrm-edge-triton-")
        backends = _backend_dir(dist, Path(self._tmp.name))
        self._log_path = Path(self._tmp.name) / "tritonserver.log"
        with open(self._log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self._command(dist, backends),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env(dist),
                start_new_session=True,  # a Ctrl-C meant for the caller reaches it via stop()
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop(keep_log=True)
            raise
        return self

    def _wait_ready(self) -> None:
        url = f"http://{self.host}:{self.ports.http}/v2/health/ready"
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise ServeUnavailable(
                    f"tritonserver exited with code {self._proc.returncode} during start-up "
                    f"({self.last_log_line()})"
                )
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(url, timeout=1.0) as r,
            ):
                if r.status == 200:
                    return
            time.sleep(0.25)
        raise ServeUnavailable(
            f"tritonserver not ready within {self.start_timeout_s:g} s ({self.last_log_line()})"
        )

    def last_log_line(self) -> str:
        """The server log's last error line (else its last line): why it stopped."""
        if self._log_path is None or not self._log_path.is_file():
            return "no log"
        lines = [ln.strip() for ln in self._log_path.read_text(errors="replace").splitlines()]
        lines = [ln for ln in lines if ln and not set(ln) <= set("+-|")]
        errors = [ln for ln in lines if ln.startswith("E") or "error" in ln.lower()]
        return (errors or lines or ["empty log"])[-1][:300]

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, grace_s: float = 15.0, *, keep_log: bool = False) -> None:
        """SIGTERM (Triton drains in-flight requests), SIGKILL after ``grace_s``."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        if self._tmp is not None and not keep_log:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> TritonServer:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
