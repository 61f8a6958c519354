"""Streaming capacity (mrm_edge.cli.bench.streaming): the real Monitor, tiny settings."""

import time
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.runtime.sources.base import Chunk, StreamEnd

from mrm_edge.cli.bench.streaming import prefilled_realtime_source, streaming_capacity


@pytest.fixture(scope="module")
def exported_model(tiny_model_dir: Path, tmp_path_factory) -> Path:
    import shutil
    import subprocess
    import sys

    model = tmp_path_factory.mktemp("bench-streaming") / "model"
    shutil.copytree(tiny_model_dir, model)
    exe = str(Path(sys.executable).parent / "mrm-edge")
    r = subprocess.run(
        [exe, "export", "--model", str(model), "--no-engine"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return model


@pytest.fixture(scope="module")
def deployed(exported_model: Path):
    from mrm_edge.runtime.model import DeployedModel

    return DeployedModel.load(exported_model)


def test_prefilled_source_sends_the_prefill_at_once_then_paces_in_real_time() -> None:
    src = prefilled_realtime_source(2, fs=100, prefill_s=5.0, seconds=0.6)
    t0 = time.monotonic()
    arrivals: list[tuple[float, float]] = []  # (media end, wall)
    ends = []
    for ev in src:
        if isinstance(ev, Chunk):
            arrivals.append(
                (ev.timestamp + len(ev.samples) / ev.sample_rate, time.monotonic() - t0)
            )
        elif isinstance(ev, StreamEnd):
            ends.append(ev.stream_id)
    assert len(ends) == 2
    media = np.array([a for a, _ in arrivals])
    wall = np.array([w for _, w in arrivals])
    assert media.max() == pytest.approx(5.6)
    assert wall[media <= 5.0].max() < 0.5  # the pre-fill is not paced
    late = media > 5.0
    # the rest arrives on schedule: media - prefill seconds after the start (± slack)
    assert np.all(wall[late] >= media[late] - 5.0 - 0.05)
    assert wall.max() < 0.6 + 0.5


def test_streaming_capacity_is_verified_at_real_time(deployed) -> None:
    lines: list[str] = []
    s = streaming_capacity(
        deployed,
        "onnxruntime",
        "fp32",
        hop_s=1.0,
        stream_seconds=1.0,
        probe_streams=4,
        probe_seconds=14.0,
        max_batch=8,
        max_tries=8,  # room to step down when other work shares the cores (as test_bench)
        log=lines.append,
    )
    assert any("max-speed probe" in ln for ln in lines)  # progress while it runs
    assert s["capacity_streams"] >= 1, s["verification"]
    v = s["verification"][-1]
    assert v["held"] and v["streams"] == s["capacity_streams"]
    # every hop of the real-time run gives one window per stream
    assert v["classified"] >= v["streams"] * 2 and v["dropped"] == 0
    assert v["latency_ms"]["p99"] <= s["latency_budget_ms"] == 1000.0
    assert v["wall_s"] >= 1.0  # paced, not max speed
    assert s["streaming_efficiency"] > 0
    assert s["end_to_end_wps"] == pytest.approx(s["probe"]["throughput_wps"])


def test_streaming_capacity_steps_down_a_bounded_number_of_times(deployed) -> None:
    # A budget no run can meet: every verification fails, N steps down, tries are bounded.
    s = streaming_capacity(
        deployed,
        "onnxruntime",
        "fp32",
        hop_s=1.0,
        budget_ms=1e-3,
        stream_seconds=1.0,
        probe_streams=2,
        probe_seconds=12.0,
        max_batch=4,
        max_tries=2,
    )
    tries = s["verification"]
    assert s["capacity_streams"] is None and "not verified" in s["capacity_note"]
    assert 1 <= len(tries) <= 2
    assert all(not t["held"] and "p99" in t["why_not"] for t in tries)
    if len(tries) == 2:
        assert tries[1]["streams"] < tries[0]["streams"]


def test_streaming_rejects_bad_knobs(deployed) -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        streaming_capacity(deployed, "tpu", "fp32")
    with pytest.raises(ValueError, match="tries"):
        streaming_capacity(deployed, "onnxruntime", "fp32", max_tries=0)
