"""``--source`` specs: each kind builds its source; anything else is a one-line error; a new
kind is one class (tests/fakes/ticks_source.py) plus one ``register_source`` line, through a
real monitor run."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from mrm_edge.runtime.app import open_monitor
from mrm_edge.runtime.backends import OnnxRuntimeBackend
from mrm_edge.runtime.model import DeployedModel
from mrm_edge.runtime.sources import registry
from mrm_edge.runtime.sources.registry import (
    SourceKind,
    SourceOptions,
    make_source,
    register_source,
    source_help,
    source_specs,
)
from mrm_edge.runtime.sources.stdin import StdinSource
from mrm_edge.runtime.sources.synthetic import SyntheticSource
from mrm_edge.runtime.sources.tcp import TcpSource
from mrm_edge.runtime.sources.wfdb import WfdbReplaySource

from tests.fakes.ticks_source import TicksSource
from tests.runtime.test_model import make_model_dir


def test_synthetic_is_built_from_the_options() -> None:
    src = make_source("synthetic", SourceOptions(streams=3, speed=None, loop=False, seed=4))
    assert isinstance(src, SyntheticSource)
    assert list(src.patients) == ["synthetic-00", "synthetic-01", "synthetic-02"]
    assert (src.speed, src.seed) == (None, 4)


@pytest.mark.realdata
def test_wfdb_takes_several_comma_separated_paths(ptbxl_root: Path, cpsc_root: Path) -> None:
    spec = f"wfdb:{ptbxl_root / 'records100/00000/00001_lr.hea'},{cpsc_root / 'A1980.mat'}"
    src = make_source(spec, SourceOptions(streams=1, speed=2.0, loop=True, seed=0))
    assert isinstance(src, WfdbReplaySource)
    assert list(src.recordings) == ["00001_lr", "A1980"]
    assert (src.speed, src.loop) == (2.0, True)


def test_tcp_listens_on_the_given_address() -> None:
    src = make_source("tcp:127.0.0.1:0", SourceOptions(streams=1, speed=1.0, loop=False, seed=0))
    try:
        assert isinstance(src, TcpSource) and src.host == "127.0.0.1" and src.port > 0
        socket.create_connection(("127.0.0.1", src.port), timeout=5).close()
    finally:
        src.close()


def test_stdin() -> None:
    assert isinstance(
        make_source("stdin", SourceOptions(streams=1, speed=1.0, loop=False, seed=0)), StdinSource
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bogus", "--source 'bogus': unknown source, expected synthetic, wfdb:PATH"),
        ("synthetic:3", "unknown source"),
        ("wfdb:", "--source 'wfdb:': expected wfdb:PATH[,PATH...]"),
        ("tcp:5555", "--source 'tcp:5555': expected tcp:HOST:PORT"),
        ("tcp::5555", "expected tcp:HOST:PORT"),
        ("tcp:127.0.0.1:http", "port 'http', expected 0..65535"),
        ("tcp:127.0.0.1:70000", "port '70000', expected 0..65535"),
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        make_source(spec, SourceOptions(streams=1, speed=1.0, loop=False, seed=0))
    assert message in str(info.value)


@pytest.fixture
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test end with it."""
    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))


def test_a_new_source_is_one_class_and_one_registration(own_registry, tmp_path: Path) -> None:
    register_source(SourceKind("ticks", "ticks:N", lambda: TicksSource.from_spec, True))
    assert source_help().endswith(" | stdin | lsl:[PROP=]VALUE | watch:DIR | ticks:N")
    with pytest.raises(ValueError, match="--source 'ticks:x': expected ticks:N"):
        make_source("ticks:x")
    model = DeployedModel.load(make_model_dir(tmp_path / "m"))
    backend = OnnxRuntimeBackend(model.onnx["fp32"].path)
    with open_monitor(model, make_source("ticks:3"), backend=backend) as mon:
        summary = mon.run()
    assert summary.ok and summary.classified == summary.windows == 3 * 3
    assert summary.source == "ticks"


def test_specs_come_from_the_registrations() -> None:
    assert source_specs() == (
        "synthetic, wfdb:PATH[,PATH...], tcp:HOST:PORT, stdin, lsl:[PROP=]VALUE or watch:DIR"
    )
    assert source_help() == (
        "synthetic | wfdb:PATH[,PATH...] | tcp:HOST:PORT | stdin | lsl:[PROP=]VALUE | watch:DIR"
    )
