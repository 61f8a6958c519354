"""The alarm policy: the card names its alarm findings (``alarm_labels``; default every label
except NORM), and NORM above threshold is "no finding", never an alarm, in the
post-processing, the event log, the live view and the summary."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mrm_edge.runtime.config import MonitorConfig
from mrm_edge.runtime.postprocess import PostprocessConfig, Postprocessor
from mrm_edge.runtime.sinks.jsonl import JsonlSink
from mrm_edge.runtime.sinks.live import findings_text
from mrm_edge.runtime.stream.preprocess import Window
from mrm_edge.runtime.stream.quality import QualityReport

from mrm_edge.artifacts import default_model_dir
from mrm_edge.card import ModelCard, ModelCardError, default_alarm_labels

LABELS = ("CD", "HYP", "MI", "NORM", "STTC")
THRESHOLDS = {"CD": 0.3, "HYP": 0.4, "MI": 0.2, "NORM": 0.8, "STTC": 0.3}


def _window(start: int) -> Window:
    return Window(
        "p1",
        start,
        np.zeros((1000, 12), np.float32),
        100,
        QualityReport(True, (), ()),
        "ok",
        "",
        0.0,
    )


def test_default_leaves_out_the_normal_labels_only():
    assert default_alarm_labels(LABELS) == ("CD", "HYP", "MI", "STTC")
    assert default_alarm_labels(["AFIB", "NORM", "SR", "STE_"]) == ("AFIB", "STE_")
    assert default_alarm_labels(["A", "B"]) == ("A", "B")


def test_the_shipped_card_names_every_label_but_norm():
    card = ModelCard.load(default_model_dir())
    assert card.alarm_labels == ["CD", "HYP", "MI", "STTC"]
    assert card.alarm_findings == ("CD", "HYP", "MI", "STTC")


def test_the_shipped_sidecars_match_the_edited_card():
    from mrm_edge.runtime.model import DeployedModel

    model = DeployedModel.load(default_model_dir())
    assert not model.refused and model.card_changes == ()


def test_a_card_without_the_field_gets_the_default(tmp_path):
    d = json.loads((default_model_dir() / "card.json").read_text())
    del d["alarm_labels"]
    assert ModelCard.from_dict(d).alarm_findings == ("CD", "HYP", "MI", "STTC")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("MI", "field 'alarm_labels' must be a list of label names"),
        (["MI", "AFIB"], "field 'alarm_labels' names AFIB, not in 'labels'"),
        ([1], "field 'alarm_labels' must be a list of label names"),
    ],
)
def test_a_bad_alarm_labels_field_is_one_line(value, message):
    d = json.loads((default_model_dir() / "card.json").read_text())
    d["alarm_labels"] = value
    with pytest.raises(ModelCardError, match=message) as e:
        ModelCard.from_dict(d, source="card.json")
    assert "\n" not in str(e.value)


def test_norm_above_threshold_is_no_finding_and_never_alarms():
    post = Postprocessor(
        LABELS,
        THRESHOLDS,
        PostprocessConfig(smoothing=1, n_on=1),
        alarm_labels=default_alarm_labels(LABELS),
    )
    p = np.array([0.05, 0.05, 0.05, 0.95, 0.05])
    for k in range(5):
        result, events = post.classified(_window(k * 100), p, 1.0)
        assert events == [] and result.alarms == ()
    assert result.positive == ("NORM",) and result.findings == ()
    assert findings_text(result) == "no finding (NORM 0.95)"


def test_an_alarm_label_above_threshold_alarms_and_is_a_finding():
    post = Postprocessor(
        LABELS,
        THRESHOLDS,
        PostprocessConfig(smoothing=1, n_on=2),
        alarm_labels=default_alarm_labels(LABELS),
    )
    p = np.array([0.05, 0.05, 0.7, 0.9, 0.5])
    post.classified(_window(0), p, 1.0)
    result, events = post.classified(_window(100), p, 1.0)
    assert [(e.label, e.state) for e in events] == [("MI", "on"), ("STTC", "on")]
    assert result.findings == ("MI", "STTC") and result.positive == ("MI", "NORM", "STTC")
    assert findings_text(result) == "MI 0.70  STTC 0.50"


def test_a_card_may_make_norm_an_alarm_and_other_labels_silent():
    post = Postprocessor(
        LABELS, THRESHOLDS, PostprocessConfig(smoothing=1, n_on=1), alarm_labels=["NORM"]
    )
    result, events = post.classified(_window(0), np.array([0.9, 0.9, 0.9, 0.9, 0.9]), 1.0)
    assert [e.label for e in events] == ["NORM"] and result.findings == ("NORM",)


def test_the_event_log_writes_findings(tmp_path):
    post = Postprocessor(
        LABELS,
        THRESHOLDS,
        PostprocessConfig(smoothing=1),
        alarm_labels=default_alarm_labels(LABELS),
    )
    result, _ = post.classified(_window(0), np.array([0.05, 0.05, 0.05, 0.95, 0.05]), 1.0)
    out = tmp_path / "events.jsonl"
    sink = JsonlSink(out)
    sink.window(result)
    doc = json.loads(out.read_text())
    assert doc["positive"] == ["NORM"] and doc["findings"] == []


def test_demo_patients_raise_no_alarm_and_the_summary_states_the_policy():
    """``make demo``'s synthetic patients (seed 8) through the shipped model: no alarm."""
    from mrm_edge.runtime.app import run_monitor
    from mrm_edge.runtime.sources.synthetic import SyntheticSource

    summary = run_monitor(
        default_model_dir(),
        lambda model: SyntheticSource(4, fs=100, seconds=40, speed=None, seed=8),
        MonitorConfig(hop_s=2.0),
        sinks=[],
        backend="onnxruntime",
        precision="int8",
    )
    assert summary.ok and summary.classified == 4 * 16
    assert summary.alarms == {"on": 0, "off": 0}
    assert "alarms: 0 on, 0 off (alarm findings: CD, HYP, MI, STTC)" in summary.lines()
