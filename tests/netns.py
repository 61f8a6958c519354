"""Run a command in a fresh network namespace (only its own loopback is up there).

The tests of the ``--insecure-plaintext-network`` opt-out must bind a wildcard address,
which on the host would listen on every interface; tests bind loopback only, so those
binds happen inside a namespace made for them (``unshare -n``, root), where 0.0.0.0 reaches
nothing but that namespace's own ``lo``. Where namespaces can't be made, they skip."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest


def netns_available() -> str | None:
    """None when ``unshare -n`` works here, else the reason it does not."""
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"the {tool} command is not installed"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot make a network namespace here ({probe.stderr.strip() or 'unshare -n'})"
    return None


def run_in_netns(
    argv: Sequence[str], timeout: float = 120, cwd: str | Path | None = None
) -> subprocess.CompletedProcess:
    """``argv`` run in a new network namespace with its loopback up (skips where impossible)."""
    reason = netns_available()
    if reason is not None:
        pytest.skip(reason)
    script = f"ip link set lo up && exec {shlex.join(argv)}"
    return subprocess.run(
        ["unshare", "-n", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
