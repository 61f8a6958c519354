"""SIGTERM / SIGINT on a real ``mrm-edge monitor`` process: the event log is complete and
valid up to the stop.

Exit status after a signal: 0 when the run stopped cleanly (drained or not) with no source,
sink or worker error — a requested stop is not a failure — and 1 when the summary carries
errors; in both cases the summary is printed and is the log's last line. One SIGINT/SIGTERM
drains (queued windows are still classified); a second stops without draining (queued
windows are logged as dropped, "stopped before inference").
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

EXE = str(Path(sys.executable).parent / "mrm-edge")
WAIT_S = 120.0  # bound on every wait: a start on 2 busy cores can take a while


def start(log: Path, tmp_path: Path, *args: str) -> subprocess.Popen:
    """The shipped model on synthetic patients, no live view, the event log at ``log``."""
    # Files, not pipes: nobody reads a pipe while we wait, and a full one would stall it.
    with open(tmp_path / "stdout.txt", "w") as out, open(tmp_path / "stderr.txt", "w") as err:
        return subprocess.Popen(
            [EXE, "monitor", "--no-ui", "--events", str(log), *args], stdout=out, stderr=err
        )


def read_lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def wait_for_windows(proc: subprocess.Popen, log: Path, n: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"monitor exited early ({proc.returncode})"
        # Only whole lines count (the last may be mid-write).
        whole = log.read_text().split("\n")[:-1] if log.exists() else []
        if sum('"type":"window"' in line for line in whole) >= n:
            return
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"no {n} window lines in {log} within {WAIT_S:g} s")


def finish(proc: subprocess.Popen, tmp_path: Path) -> tuple[int, str]:
    try:
        rc = proc.wait(WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    # rich wraps the printed summary at the (non-terminal) console's width: unwrap it.
    return rc, " ".join((tmp_path / "stderr.txt").read_text().split())


def assert_complete_log(log: Path, signame: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Every line parses; summary last; every window from each stream's start to its last
    one has exactly one outcome line; the summary's per-stream counts match the lines."""
    lines = [json.loads(line) for line in read_lines(log)]  # raises on a half-written line
    assert lines[0]["type"] == "start" and lines[-1]["type"] == "summary"
    assert Counter(d["type"] for d in lines)["summary"] == 1
    summary = lines[-1]
    assert summary["stopped_by"] == f"signal {signame}"
    hop = round(lines[0]["hop_s"] * lines[0]["sampling_rate"])
    windows = [d for d in lines if d["type"] == "window"]
    dropped = [d for d in lines if d["type"] == "dropped"]
    for d in windows:  # an outcome, not a placeholder
        if d["status"] == "ok":
            assert d["probabilities"] is not None and d["latency_ms"] >= 0
        else:
            assert d["status"] == "rejected" and d["reason"], d
    streams = {d["stream"] for d in lines if d["type"] == "stream" and d["event"] == "start"}
    assert streams and set(summary["per_stream"]) == streams
    for sid in streams:
        mine = [d for d in windows if d["stream"] == sid]
        gone = [d for d in dropped if d["stream"] == sid]
        starts = sorted(d["start"] for d in mine + gone)
        # Windows are cut every hop from the stream's start: none may be missing or twice.
        assert starts == list(range(0, len(starts) * hop, hop)), sid
        c = summary["per_stream"][sid]
        assert c["classified"] == sum(d["status"] == "ok" for d in mine), sid
        assert c["rejected"] == sum(d["status"] == "rejected" for d in mine), sid
        assert c["dropped"] == len(gone) and c["windows"] == len(starts), sid
        assert c["ended"] == "stopped", sid  # cut short by the signal, said so
    assert summary["windows"] == len(windows) + len(dropped)
    ends = [d for d in lines if d["type"] == "stream" and d["event"] == "end"]
    assert sorted(d["stream"] for d in ends) == sorted(streams)  # each stream ended once
    return summary, lines


def test_sigterm_drains_and_leaves_a_complete_log(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    proc = start(log, tmp_path, "--streams", "4", "--speed", "10x", "--max-delay", "20")
    wait_for_windows(proc, log, 8)
    proc.send_signal(signal.SIGTERM)
    rc, err = finish(proc, tmp_path)
    assert rc == 0, err
    assert "Traceback" not in err
    summary, _ = assert_complete_log(log, "SIGTERM")
    assert summary["errors"] == [] and summary["classified"] >= 8
    # Drained: what was queued at the signal was classified, not dropped.
    assert "stopped before inference" not in summary["dropped_by_cause"]
    # The summary is printed (to stderr, with the backend line: stdout stays for data).
    assert f"windows {summary['windows']}: classified {summary['classified']}" in err


def test_second_sigint_stops_without_draining_and_the_log_is_still_complete(
    tmp_path: Path,
) -> None:
    log = tmp_path / "events.jsonl"
    # At max speed the source outruns inference, so the queue is deep when the signals
    # come: the first starts a drain that the second cuts short.
    proc = start(log, tmp_path, "--streams", "8", "--speed", "max")
    wait_for_windows(proc, log, 1)
    time.sleep(1.0)  # let the queue fill
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)  # two signals sent at once could merge into one
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGINT)
    rc, err = finish(proc, tmp_path)
    assert rc == 0, err
    assert "Traceback" not in err and "Aborted" not in err
    summary, lines = assert_complete_log(log, "SIGINT")
    assert summary["errors"] == []
    stopped = summary["dropped_by_cause"].get("stopped before inference", 0)
    assert stopped > 0, summary["dropped_by_cause"]  # the no-drain path was taken
    causes = Counter(d["cause"] for d in lines if d["type"] == "dropped")
    assert causes == Counter(summary["dropped_by_cause"])
    assert f"stopped before inference {stopped}" in err  # the printed summary says so
