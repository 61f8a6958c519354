"""The live view (rich): rows drawn, stops, row cap."""

from __future__ import annotations

import io

from mrm_edge.runtime.postprocess import AlarmEvent
from mrm_edge.runtime.sinks.base import StreamEvent
from mrm_edge.runtime.sinks.live import LiveView
from mrm_edge.runtime.sinks.summary import Tally

from tests.runtime.sinks.records import info, ok_result, rejected_result


def test_live_view_draws_rows_and_stops() -> None:
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, width=160, force_terminal=False)
    t = Tally(queue_depth=lambda: 3)
    view = LiveView(console)
    view.open(info(stats=t.live))
    view.stream(StreamEvent("p1", "start"))
    view.window(ok_result())
    t.classified("p1", 12.0, ("MI",))
    view.window(rejected_result())
    view.alarm(AlarmEvent("p1", "MI", "on", 300, 100, 0.7, 0.5))
    view.stream(StreamEvent("p2", "end", "end of record"))
    view.close(None)
    view.close(None)  # idempotent
    text = out.getvalue()
    assert "MI 0.70" in text and "rejected: lead V6 flat" in text
    assert "no finding" not in text
    # The backend's reason is the report sink's, printed once above the view: not repeated.
    assert "why:" not in text and "because" not in text
    assert "queue 3" in text and "ended (end of record)" in text
    assert "p50 12 ms" in text


def test_live_view_caps_rows() -> None:
    from rich.console import Console

    out = io.StringIO()
    view = LiveView(Console(file=out, width=120), max_rows=2)
    view.open(info())
    for i in range(5):
        view.window(ok_result(stream=f"s{i}"))
    view.close(None)
    assert "3 more stream(s)" in out.getvalue()
