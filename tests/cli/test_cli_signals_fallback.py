"""SIGTERM / SIGINT at any point of a real ``mrm-edge monitor`` run that falls back between
backends: every run ends with exit 0, a complete event log whose last line is the summary,
the summary printed, and nothing native or Python-level on stderr (no segmentation fault, no
traceback). Issue 20, finding 5: such a run once ended in SIGSEGV (rc 139) with no summary.

The fallback is real: the model directory's ``model.int8.onnx`` (ONNX Runtime's first choice
on a CPU) loads and runs one window, but ONNX Runtime fails it on every batch of two or more
(its output is reshaped to ``[1, labels]``), so the first multi-stream batch moves the run
to ``model.onnx``. The probe is off: it would time the broken file and pass over it.

The points are drawn from a fixed seed per case, relative to what the event log shows:
before the first window (load, activation), around the fallback, right after it, a second
signal during the drain, and a signal during the shutdown a ``--duration`` started.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mrm_edge.export.sidecar import write_sidecar

from tests.runtime.test_model import make_model_dir

pytestmark = pytest.mark.slow  # a handful of monitor processes, a few seconds each

EXE = str(Path(sys.executable).parent / "mrm-edge")
WAIT_S = 120.0  # bound on every wait: a start on 2 busy cores can take a while
NATIVE_CRASH = ("Segmentation fault", "Fatal Python error", "Traceback", "Aborted")


def fails_on_batches(path: Path) -> None:
    """Rewrite ``path`` (a model ONNX) so that ONNX Runtime runs a batch of one and fails
    every larger batch at run time, and re-sign its sidecar: it loads, it is what the
    sidecar says, its declared output agrees with the card; only inference fails."""
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load(path)
    out = m.graph.output[0]
    n_out = out.type.tensor_type.shape.dim[1].dim_value
    for node in m.graph.node:
        node.output[:] = [f"{o}_raw" if o == out.name else o for o in node.output]
    one_row = np.array([1, n_out], dtype=np.int64)
    m.graph.initializer.append(numpy_helper.from_array(one_row, "one_row"))
    m.graph.node.append(helper.make_node("Reshape", [f"{out.name}_raw", "one_row"], [out.name]))
    onnx.save(m, path)
    sidecar = json.loads(path.with_name(path.name + ".json").read_text())
    keep = ("precision", "labels", "sampling_rate", "window_samples", "source_card_sha256")
    write_sidecar(path, {k: sidecar[k] for k in keep if k in sidecar})


@pytest.fixture(scope="module")
def falling_back_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = make_model_dir(tmp_path_factory.mktemp("fallback") / "model", precisions=("fp32", "int8"))
    fails_on_batches(d / "model.int8.onnx")
    return d


def lines_of(log: Path) -> list[dict[str, Any]]:
    """The log's whole lines, parsed (the last may be mid-write)."""
    whole = log.read_text().split("\n")[:-1] if log.exists() else []
    return [json.loads(line) for line in whole]


class Run:
    """One ``mrm-edge monitor`` process on the falling-back model; stdout and stderr to
    files (nobody reads a pipe while we wait, and a full one would stall it)."""

    def __init__(self, model: Path, tmp: Path, *args: str) -> None:
        self.log, self.tmp = tmp / "events.jsonl", tmp
        env = {
            **os.environ,
            "MRM_EDGE_AUTO_PROBE": "0",
            "MRM_EDGE_CACHE_DIR": str(tmp / "cache"),
            "PYTHONFAULTHANDLER": "1",  # a native crash would print where it happened
        }
        cmd = [EXE, "monitor", "--model", str(model), "--backend", "onnxruntime", "--no-ui"]
        cmd += ["--events", str(self.log), "--streams", "3", "--speed", "10x", *args]
        with open(tmp / "stdout.txt", "w") as out, open(tmp / "stderr.txt", "w") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)

    def wait_until(self, what: str, seen: Callable[[list[dict[str, Any]]], bool]) -> None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if self.log.exists() and seen(lines_of(self.log)):
                return
            rc = self.proc.poll()
            assert rc is None, f"monitor exited ({rc}) before {what}"
            time.sleep(0.02)
        self.proc.kill()
        raise AssertionError(f"no {what} in {self.log} within {WAIT_S:g} s")

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def finish(self) -> tuple[int, str, str]:
        try:
            rc = self.proc.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        # rich wraps the printed summary at the (non-terminal) console's width: unwrap it.
        err = " ".join((self.tmp / "stderr.txt").read_text().split())
        return rc, err, (self.tmp / "stdout.txt").read_text()


def fell_back(lines: list[dict[str, Any]]) -> bool:
    return any(d["type"] == "backend" for d in lines)


def windows(lines: list[dict[str, Any]]) -> int:
    return sum(d["type"] == "window" for d in lines)


def assert_clean_end(run: Run, stopped_by: tuple[str, ...]) -> dict[str, Any]:
    rc, err, out = run.finish()
    for crash in NATIVE_CRASH:
        assert crash not in err and crash not in out, err[-2000:]
    assert rc == 0, err[-2000:]
    lines = [json.loads(line) for line in run.log.read_text().splitlines()]  # every line
    assert lines[0]["type"] == "start" and lines[-1]["type"] == "summary"
    assert sum(d["type"] == "summary" for d in lines) == 1
    summary = lines[-1]
    assert summary["stopped_by"] in stopped_by, summary["stopped_by"]
    assert summary["errors"] == [], summary["errors"]
    # Every window has one outcome, and the summary counts them.
    outcomes = windows(lines) + sum(d["type"] == "dropped" for d in lines)
    assert summary["windows"] == outcomes
    assert f"windows {summary['windows']}: classified {summary['classified']}" in err
    return summary


# Each case: (name, seed). The seed draws the delays; the name says where they fall.
CASES = [
    ("before the first window", 1),
    ("around the fallback", 2),
    ("right after the fallback", 3),
    ("second signal during the drain", 4),
    ("during the shutdown --duration started", 5),
]


@pytest.mark.parametrize(("where", "seed"), CASES, ids=[c[0] for c in CASES])
def test_a_signal_at_any_point_of_a_run_that_falls_back_ends_with_exit_0_and_a_summary(
    falling_back_model: Path, tmp_path: Path, where: str, seed: int
) -> None:
    rng = random.Random(seed)
    sig = rng.choice([signal.SIGTERM, signal.SIGINT])
    names = (f"signal {sig.name}",)
    if where == "during the shutdown --duration started":
        run = Run(falling_back_model, tmp_path, "--duration", "5")
        run.wait_until("start line", bool)  # the duration counts from about here
        time.sleep(rng.uniform(4.5, 5.5))  # around the stop the duration makes
        run.signal(sig)
        names += ("duration reached",)
    else:
        run = Run(falling_back_model, tmp_path)
        if where == "before the first window":
            # The log exists once the handlers are in place: the model is loading or the
            # backend activating; the first window needs 1 s of signal at 10x.
            run.wait_until("event log", lambda ls: True)
            time.sleep(rng.uniform(0.0, 0.5))
        elif where == "around the fallback":
            run.wait_until("first window", lambda ls: windows(ls) > 0 or fell_back(ls))
            time.sleep(rng.uniform(0.0, 0.2))
        else:
            run.wait_until("fallback", fell_back)
            time.sleep(rng.uniform(0.0, 0.5))
        run.signal(sig)
        if where == "second signal during the drain":
            time.sleep(rng.uniform(0.05, 0.3))  # two at once could merge into one
            second = signal.SIGINT if sig == signal.SIGTERM else signal.SIGTERM
            run.signal(second)
    summary = assert_clean_end(run, names)
    if where != "before the first window":
        assert summary["backend_switches"], summary  # the run did fall back
