"""Helpers for the central-station tests: a real ``mrm-edge monitor --web`` in a subprocess
on a free loopback port, a real ``StationServer`` in this process fed a sine per bed, raw
HTTP over a socket, and a headless Chromium driven by selenium (the system's Chromium and
chromedriver; the driver path is always given, so Selenium Manager never downloads)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-m", "mrm_edge.cli"]
# Three fold-10 PTB-XL records labelled NORM that the shipped model reads as no finding, and
# one (ASMI, ISC_, STD_) it flags MI / STTC / HYP well above threshold.
NORMAL_RECORDS = ("00252_lr", "00361_lr", "00057_lr")
FLAGGED_RECORD = "00271_lr"
BEDS = 32
_URL = re.compile(r"central station (http://[0-9.:\[\]a-z]+/)")


def chromium_paths() -> tuple[str, str]:
    """(browser, driver), or skip with the reason."""
    pytest.importorskip("selenium", reason="selenium missing: pip install 'mrm-edge[web-test]'")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip(
            "no headless browser here: apt-get install -y chromium chromium-driver "
            "(.ci/run does it)"
        )
    return browser, driver


def new_browser(width: int = 1400, height: int = 900, extra: tuple[str, ...] = ()) -> Any:
    """Headless Chromium; ``extra``: more command-line switches."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_paths()
    opts = Options()
    opts.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        *extra,
    ):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


class MonitorProcess:
    """``mrm-edge monitor --web 127.0.0.1:PORT`` with ``args``; ``url`` once it serves."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [*CLI, "monitor", "--no-ui", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "COLUMNS": "200", **(env or {})},
        )
        self.lines: list[str] = []
        self._seen = threading.Event()
        self.url: str | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            m = _URL.search(line)
            if m and self.url is None:
                self.url = m.group(1)
                self._seen.set()

    def wait_url(self, timeout: float = 60.0) -> str:
        if not self._seen.wait(timeout):
            self.stop()
            raise AssertionError("monitor never served its page:\n" + self.output)
        assert self.url is not None
        return self.url

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def wait_for(predicate: Any, timeout: float, what: str, step: float = 0.25) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def stuck_websocket(port: int, path: str = "/ws") -> Any:
    """A WebSocket client that completes the handshake and then never reads again (a stuck
    or backgrounded browser), with a tiny receive buffer: a raw socket, since a real client
    library keeps reading in the background."""
    import base64
    import socket

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def station_state(beds: int = BEDS, model: str = "m", bed_name: str = "bed-{i:02d}") -> Any:
    """A ``StationState`` opened on a three-label run, with ``beds`` live beds."""
    from mrm_edge.runtime.sinks.base import RunInfo, StreamEvent
    from mrm_edge.runtime.web.state import StationState

    st = StationState()
    st.open(
        RunInfo(
            model=model,
            labels=("CD", "MI", "NORM"),
            thresholds={"CD": 0.3, "MI": 0.3, "NORM": 0.5},
            sampling_rate=100,
            window_s=10,
            hop_s=1,
            backend="onnxruntime",
            backend_reason="because",
            source="test",
            knobs={"alarm_labels": ["CD", "MI"]},
        )
    )
    for i in range(beds):
        st.stream(StreamEvent(bed_name.format(i=i), "start", "500 Hz"))
    return st


def raise_alarm(state: Any, bed: str, label: str = "MI") -> int:
    """Switch ``label`` on for ``bed`` as the engine would; the new alarm's id."""
    from mrm_edge.runtime.postprocess import AlarmEvent

    state.alarm(AlarmEvent(bed, label, "on", 1000, 100, 0.9, 0.3))
    return state.alarm_list()[1][-1]["id"]


class Feeder:
    """Pushes 0.1 s of a 1 Hz sine to every bed every 0.1 s (a live source, in a thread)."""

    def __init__(self, state: Any) -> None:
        self.state, self.stop = state, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import numpy as np
        from mrm_edge.runtime.sources.base import Chunk

        n = 0
        while not self.stop.wait(0.1):
            t = (n + np.arange(50)) / 500
            chunk = np.repeat(np.sin(2 * np.pi * t)[:, None], 12, axis=1).astype(np.float32)
            for sid in self.state.cursors():
                self.state.waveform(Chunk(sid, chunk, 500))
            n += 50


@contextlib.contextmanager
def running_station(config: Any, state: Any = None) -> Iterator[Any]:
    """A started ``StationServer`` for ``config`` (a fed ``station_state()`` by default)."""
    from mrm_edge.runtime.web.server import StationServer

    state = station_state() if state is None else state
    server = StationServer(state, config)
    server.start()
    feeder = Feeder(state)
    try:
        yield server
    finally:
        feeder.stop.set()
        server.stop()


def raw_http(port: int, request: bytes, host: str = "127.0.0.1") -> tuple[int, bytes]:
    """Send ``request`` as is over a real socket; (status, whole response). Status 0: the
    server closed without an answer."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                data += chunk
    head = data.split(b"\r\n", 1)[0].split()
    return (int(head[1]) if len(head) > 1 and head[1].isdigit() else 0), data
