"""What the central station costs, measured (``python -m benchmarks.station``):

* ``browser`` — a real ``mrm-edge monitor --web`` with N synthetic beds at real time and a
  headless Chromium on the page: the page's frame rate (``requestAnimationFrame`` renders/s),
  the WebSocket frames/s it receives, and the CPU (% of one core) of the monitor and of
  Chromium over the same seconds. Needs the ``web`` and ``web-test`` extras and Debian's
  chromium + chromium-driver.
* ``cpu`` — the monitor's CPU at real time with N beds, without and with the web view.
* ``clients`` — the monitor at max speed (synthetic, pre-paced by nothing) without the web
  view, with it and 0 clients, and with it and K WebSocket clients reading every frame (in a
  separate process): classified windows/s of each run, so what the view and a client cost
  the monitor reads off directly.

Linux only (CPU from /proc). Figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_URL = re.compile(r"central station (http://[0-9.:]+/)")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime
    return total


def _children(pid: int) -> list[int]:
    """``pid`` and all its descendants (from every process's parent in /proc)."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += [c for c, pp in parent.items() if pp == p]
    return out


def _start_monitor(args: list[str]) -> tuple[subprocess.Popen[str], str | None, list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mrm_edge.cli", "monitor", "--no-ui", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    lines: list[str] = []
    url = None
    if any(a == "--web" for a in args):
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            m = _URL.search(line)
            if m:
                url = m.group(1)
                break
    return proc, url, lines


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    return out or ""


def measure_browser(beds: int, seconds: float, hop: float) -> dict[str, Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    proc, url, _ = _start_monitor(
        ["--streams", str(beds), "--hop", str(hop), "--max-batch", str(beds),
         "--web", "127.0.0.1:0", "--duration", str(seconds + 90)]
    )  # fmt: skip
    assert url, "the monitor did not serve its page"
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1600,1000",
    ):
        opts.add_argument(a)
    service = Service(executable_path="/usr/bin/chromedriver")
    driver = webdriver.Chrome(service=service, options=opts)
    try:
        driver.get(url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            heads = driver.execute_script("return Object.keys(window.__station.heads).length")
            if heads >= beds:
                break
            time.sleep(0.5)
        time.sleep(3)  # settle
        browser_pids = _children(service.process.pid)
        s0 = driver.execute_script("return window.__station")
        m0, b0, t0 = _cpu_seconds([proc.pid]), _cpu_seconds(browser_pids), time.monotonic()
        time.sleep(seconds)
        s1 = driver.execute_script("return window.__station")
        m1, b1, t1 = _cpu_seconds([proc.pid]), _cpu_seconds(browser_pids), time.monotonic()
        tiles = driver.execute_script("return document.querySelectorAll('.tile').length")
    finally:
        driver.quit()
        out = _stop(proc)
    dt = t1 - t0
    return {
        "beds": beds,
        "tiles": tiles,
        "seconds": round(dt, 1),
        "page_fps": round((s1["renders"] - s0["renders"]) / dt, 1),
        "socket_frames_per_s": round((s1["frames"] - s0["frames"]) / dt, 1),
        "monitor_cpu_pct": round(100 * (m1 - m0) / dt, 1),
        "chromium_cpu_pct": round(100 * (b1 - b0) / dt, 1),
        "monitor_dropped_windows": _summary_dropped(out),
    }


def _summary_dropped(out: str) -> int | None:
    m = re.search(r"dropped (\d+)", out)
    return int(m.group(1)) if m else None


def _reader(url: str, n: int, stop_after: float) -> subprocess.Popen[str]:
    """``n`` WebSocket clients reading every frame, in a process of their own."""
    code = (
        "import sys, threading, time\n"
        "from websockets.sync.client import connect\n"
        "url, n, until = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])\n"
        "counts = [0] * n\n"
        "def run(i):\n"
        "    with connect(url) as ws:\n"
        "        while time.monotonic() < until:\n"
        "            ws.recv(timeout=5); counts[i] += 1\n"
        "ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "print(counts)\n"
    )
    ws_url = url.replace("http://", "ws://") + "ws"
    return subprocess.Popen(
        [sys.executable, "-c", code, ws_url, str(n), str(stop_after)],
        stdout=subprocess.PIPE,
        text=True,
    )


def _run_max(streams: int, seconds: float, web: bool, clients: int) -> dict[str, Any]:
    """One in-process run at max speed with ``overload="block"`` and a short queue, so the
    source waits for the backend and the figure is the sustained classified windows/s (no
    drops, no long drain at the end)."""
    import io
    import threading

    from mrm_edge.runtime.app import run_monitor
    from mrm_edge.runtime.config import MonitorConfig
    from mrm_edge.runtime.sources.synthetic import SyntheticSource
    from mrm_edge.runtime.web.config import WebConfig
    from rich.console import Console

    from mrm_edge.artifacts import default_model_dir

    out = io.StringIO()
    readers: list[subprocess.Popen[str]] = []

    def start_reader() -> None:  # once the page's address is printed
        for _ in range(600):
            m = _URL.search(out.getvalue())
            if m:
                readers.append(_reader(m.group(1), clients, seconds - 4))
                return
            time.sleep(0.05)

    if web and clients:
        threading.Thread(target=start_reader, daemon=True).start()
    summary = run_monitor(
        default_model_dir(),
        SyntheticSource(streams, fs=500, speed=None),
        MonitorConfig(duration_s=seconds, overload="block", max_queue=64),
        sinks=["report"],
        console=Console(file=out, width=200),
        web=WebConfig("127.0.0.1", 0) if web else None,
    )
    frames = None
    if readers:
        r_out, _ = readers[0].communicate(timeout=60)
        frames = json.loads(r_out.strip() or "[]")
    return {
        "web": web,
        "clients": clients,
        "windows_per_s": round(summary.throughput_wps, 2),
        "dropped": summary.dropped,
        "client_frames": frames,
    }


def measure_cpu(beds: int, seconds: float, hop: float, repeats: int) -> dict[str, list[float]]:
    """Monitor CPU (% of one core) at real time with ``beds`` synthetic beds, without and
    with the web view (no client), interleaved ``repeats`` times."""
    res: dict[str, list[float]] = {"no web": [], "web": []}
    for _ in range(repeats):
        for web in (False, True):
            args = ["--streams", str(beds), "--hop", str(hop), "--max-batch", str(beds),
                    "--duration", str(seconds + 40)]  # fmt: skip
            if web:
                args += ["--web", "127.0.0.1:0"]
            proc, _, _ = _start_monitor(args)
            time.sleep(15)  # model load and the first windows
            c0, t0 = _cpu_seconds([proc.pid]), time.monotonic()
            time.sleep(seconds)
            c1, t1 = _cpu_seconds([proc.pid]), time.monotonic()
            _stop(proc)
            res["web" if web else "no web"].append(round(100 * (c1 - c0) / (t1 - t0), 1))
    return res


def measure_clients(streams: int, seconds: float, clients: int, repeats: int) -> list[dict]:
    runs = []
    for _ in range(repeats):  # interleaved, so drifting background load hits all alike
        runs.append(_run_max(streams, seconds, web=False, clients=0))
        runs.append(_run_max(streams, seconds, web=True, clients=0))
        runs.append(_run_max(streams, seconds, web=True, clients=clients))
    return runs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["browser", "cpu", "clients"])
    ap.add_argument("--beds", type=int, default=64)
    ap.add_argument("--hop", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args(argv)
    if a.what == "browser":
        print(json.dumps(measure_browser(a.beds, a.seconds, a.hop), indent=1))
    elif a.what == "cpu":
        print(json.dumps(measure_cpu(a.beds, a.seconds, a.hop, a.repeats)))
    else:
        runs = measure_clients(a.streams, a.seconds, a.clients, a.repeats)
        print(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
