"""The outbox sink inside a real monitor run: a full outbox is loud (a notice for every
result it refuses, in the event log as in the terminal and the station) and never holds up
classification; reports per record and per alarm; the stored message ids are stable."""

from __future__ import annotations

import json
from pathlib import Path

from mrm_edge.runtime.app import open_monitor
from mrm_edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
from mrm_edge.runtime.config import MonitorConfig
from mrm_edge.runtime.model import DeployedModel
from mrm_edge.runtime.outbox.channels import ChannelOptions, make_channel
from mrm_edge.runtime.outbox.store import Outbox
from mrm_edge.runtime.sinks.jsonl import JsonlSink
from mrm_edge.runtime.sinks.outbox import OutboxSink
from mrm_edge.runtime.sources.wfdb import WfdbReplaySource

from mrm_edge.cli.common import model_path

RECORDS = ["00001_lr", "00002_lr", "00003_lr", "00004_lr"]


def _run(tmp_path: Path, outbox: Outbox, paths: list[Path], per: str = "record") -> list[dict]:
    """``paths`` through the shipped model (a 1 s hop) into an HL7 sink whose receiver is
    down (a closed port) and the event log; the event log's lines."""
    model = DeployedModel.load(model_path(None))
    backend = OnnxRuntimeBackend(model.onnx["fp32"].path, providers=["CPUExecutionProvider"])
    source = WfdbReplaySource(paths, speed=None)
    log = tmp_path / "events.jsonl"
    sink = OutboxSink(outbox, make_channel("hl7:127.0.0.1:9", ChannelOptions()), per)  # type: ignore[arg-type]
    with backend, open_monitor(model, source, MonitorConfig(hop_s=1.0), backend,
                               sinks=[JsonlSink(log), sink]) as monitor:  # fmt: skip
        summary = monitor.run()
    assert summary.ok
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_a_full_outbox_is_loud_for_each_result_and_classification_goes_on(
    ptbxl_root: Path, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite", max_messages=1)
    lines = _run(tmp_path, outbox, _ptbxl(ptbxl_root))
    windows = [line for line in lines if line["type"] == "window"]
    assert len(windows) == len(RECORDS)  # 10 s records: one window each, every one classified
    notices = [line["text"] for line in lines if line["type"] == "notice"]
    full = [text for text in notices if "OUTBOX FULL" in text]
    assert len(full) == len(RECORDS) - 1  # one stored, each of the others refused loudly
    assert all("was NOT stored" in text and "mrm-edge outbox" in text for text in full)
    assert len(Outbox(tmp_path / "outbox.sqlite").messages()) == 1
    assert any("unreachable" in text for text in notices)  # the receiver being down, too


def _ptbxl(root: Path) -> list[Path]:
    return [root / "records100" / "00000" / f"{r}.hea" for r in RECORDS]


def test_one_report_per_record_with_stable_ids(ptbxl_root: Path, tmp_path: Path) -> None:
    ids = []
    for run in ("a", "b"):  # the same records twice: the same results, the same ids
        (tmp_path / run).mkdir()
        box = Outbox(tmp_path / f"{run}.sqlite")
        _run(tmp_path / run, box, _ptbxl(ptbxl_root))
        assert {m.stream_id for m in box.messages()} == set(RECORDS)
        ids.append(sorted(m.message_id for m in box.messages()))
    assert len(ids[0]) == len(RECORDS) and ids[0] == ids[1]


def test_one_report_per_alarm_switch(cpsc_root: Path, tmp_path: Path) -> None:
    """CPSC 2018 records of 30-60 s (a 1 s hop: dozens of windows each) per alarm: one
    message for every alarm line of the event log, on and off."""
    box = Outbox(tmp_path / "outbox.sqlite")
    paths = sorted(cpsc_root.glob("A*.mat"))
    lines = _run(tmp_path, box, paths, per="alarm")
    switched = [line for line in lines if line["type"] == "alarm"]
    assert switched and len(box.messages()) == len(switched)
