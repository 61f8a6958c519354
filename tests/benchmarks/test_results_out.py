"""python -m benchmarks.results_out at a small size: every stored message reaches the
loopback MLLP receiver, and a monitor run with both result sinks delivers one report per
synthetic stream to each receiver and classifies as many windows as without them."""

from __future__ import annotations

import pytest

pytest.importorskip("hl7", reason="the hl7 extra: pip install 'mrm-edge[hl7]'")
pytest.importorskip("fhir.resources", reason="the fhir extra: pip install 'mrm-edge[fhir]'")

from benchmarks.results_out import monitor_rate, outbox_rate


def test_outbox_rate_delivers_every_message() -> None:
    row = outbox_rate(40)
    assert row["received"] == 40 and row["delivered_per_s"] > 0


def test_monitor_rate_with_and_without_the_sinks() -> None:
    plain = monitor_rate(streams=2, seconds=20.0, with_sinks=False)
    both = monitor_rate(streams=2, seconds=20.0, with_sinks=True)
    assert both["windows"] == plain["windows"] > 0
    assert both["delivered_hl7_fhir"] == [2, 2]
