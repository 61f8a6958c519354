"""``mrm-edge monitor --web``: bad addresses, a malformed ``--web-allow-host`` and a
non-loopback bind without a token are refused with one line before anything runs (nothing
is bound); ``--web-allow-host NAME`` adds a name the station answers to, and no other."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

pytest.importorskip("uvicorn", reason="the web view needs: pip install 'mrm-edge[web]'")


def _monitor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mrm_edge.cli", "monitor", "--no-ui", "--duration", "1", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_a_non_loopback_bind_without_a_token_is_refused():
    env = {k: v for k, v in os.environ.items() if k != "MRM_EDGE_WEB_TOKEN"}
    r = subprocess.run(
        [sys.executable, "-m", "mrm_edge.cli", "monitor", "--no-ui", "--web", "0.0.0.0:0"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines == [
        "Error: --web 0.0.0.0:0: serving beyond this machine needs an access token "
        "(--web-token TOKEN or MRM_EDGE_WEB_TOKEN); or bind 127.0.0.1"
    ]
    assert "backend" not in r.stdout  # refused before the model or a backend started


def test_a_bad_address_is_one_line():
    r = _monitor("--web", "127.0.0.1:http")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "expected [HOST:]PORT" in r.stderr.strip().splitlines()[-1]


def test_a_busy_port_is_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = _monitor("--web", f"127.0.0.1:{port}")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"--web 127.0.0.1:{port}: cannot bind" in r.stderr


def test_a_malformed_allowed_host_is_one_line():
    r = _monitor("--web", "127.0.0.1:0", "--web-allow-host", "https://station.example/")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "Error: --web-allow-host 'https://station.example/': expected a host name with an "
        "optional port, e.g. station.example or station.example:8443 (no scheme, no path)"
    ]


@pytest.mark.slow
def test_an_allowed_host_is_served_and_a_foreign_one_refused():
    from tests.runtime.web.station import MonitorProcess, raw_http

    mon = MonitorProcess(
        ["--streams", "1", "--duration", "120", "--web", "127.0.0.1:0",
         "--web-allow-host", "station.example", "--web-allow-host", "ward7.example:8443"]
    )  # fmt: skip
    try:
        port = int(mon.wait_url().rsplit(":", 1)[1].strip("/"))
        answers = {}
        for host in ("station.example", "ward7.example:8443", f"127.0.0.1:{port}",
                     "attacker.example", "ward8.example"):  # fmt: skip
            req = f"GET /api/state HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            answers[host] = raw_http(port, req.encode())[0]
    finally:
        mon.stop()
    assert answers == {
        "station.example": 200,
        "ward7.example:8443": 200,
        f"127.0.0.1:{port}": 200,
        "attacker.example": 421,
        "ward8.example": 421,
    }
