"""A sink is one class plus one ``register_sink`` line: a trivial one
(tests/fakes/counting_sink.py), registered here, receives a real monitor run next to the
built-in ones; unknown names are one-line errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.runtime import app
from mrm_edge.runtime.sinks import registry
from mrm_edge.runtime.sinks.registry import SinkSettings, make_sink, register_sink
from mrm_edge.runtime.sources.base import ArraySource

from mrm_edge.data.synthetic import make_patients, synthesize
from tests.fakes.counting_sink import CountingSink
from tests.runtime.test_model import make_model_dir


@pytest.fixture(autouse=True)
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test end with it."""
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))


def test_a_new_sink_is_one_class_and_one_registration(tmp_path: Path) -> None:
    from rich.console import Console

    built: list[CountingSink] = []
    register_sink("count", lambda settings: built.append(CountingSink(settings)) or built[-1])
    recs = {
        p.patient_id: (np.ascontiguousarray(synthesize(p, 15.0, 100).T), 100)
        for p in make_patients(2, 0)
    }
    out = io.StringIO()
    summary = app.run_monitor(
        make_model_dir(tmp_path / "m"),
        ArraySource(recs, speed=None),
        backend="onnxruntime",
        sinks=["report", "count"],
        console=Console(file=out, width=200),
    )
    (sink,) = built
    assert summary.ok and summary.windows == 12
    assert sink.windows == summary.classified + summary.rejected == 12
    assert sink.summary is summary
    assert "windows 12: classified 12" in out.getvalue()  # the report sink ran beside it


def test_built_in_and_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown sink 'nope', expected one of report, jsonl"):
        make_sink("nope", SinkSettings())
    with pytest.raises(ValueError, match="needs an event log path"):
        make_sink("jsonl", SinkSettings())
