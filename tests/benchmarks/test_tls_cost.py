"""python -m benchmarks.tls_cost, its transport half at a small size: certificates made
with openssl, devices in a child process, plain and TLS both receive every sample."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mrm_edge.runtime.sources.tls import server_context

from benchmarks.tls_cost import _receive, make_certificates


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_receive_at_max_speed_plain_and_tls(tmp_path: Path) -> None:
    server, device = make_certificates(tmp_path)
    for tls, dev in ((None, None), (server_context(server), device)):
        r = _receive(tls, dev, n=4, seconds=2.0, fs=250)
        assert r["signal_s"] == 4 * 2.0  # every sample of every device arrived
        assert r["signal_s_per_s"] > 0 and r["cpu_ms_per_signal_s"] > 0
