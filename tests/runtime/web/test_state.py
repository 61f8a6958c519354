"""StationState: what a bed shows (findings, alarm, signal quality with the lead named,
stream state), the alarm history with acknowledgement, and the 12-lead window."""

from __future__ import annotations

import numpy as np
from mrm_edge.runtime.postprocess import AlarmEvent, WindowResult
from mrm_edge.runtime.sinks.base import StreamEvent
from mrm_edge.runtime.sources.base import Chunk
from mrm_edge.runtime.web.state import StationState, quality_text


def _rejected(kinds, leads=(), reason="r"):
    return WindowResult("b", 0, 100, 1000, "rejected", reason, 0.0, reason_kinds=kinds,
                        bad_leads=leads)  # fmt: skip


def test_quality_states_name_the_lead():
    assert quality_text(_rejected(("flat lead",), ("V6",))) == ("lead-off", "lead off / flat: V6")
    assert quality_text(_rejected(("non-finite samples",), ("V2",)))[0] == "nan"
    assert quality_text(_rejected(("saturation",), ("I",))) == ("saturated", "saturated: I")
    assert quality_text(_rejected(("samples missing",), reason="3 s missing"))[1].startswith(
        "gap: 3 s missing"
    )


def test_a_stalled_stream_shows_as_stalled_and_ended():
    st = StationState()
    st.stream(StreamEvent("b", "start", "500 Hz"))
    st.stream(StreamEvent("b", "end", "stalled (no data for 5 s)"))
    bed = st.beds_summary()["b"]
    assert bed["state"] == "ended" and bed["quality"] == "stalled"


def test_a_resynchronised_stream_stays_live():
    st = StationState()
    st.stream(StreamEvent("b", "start", "500 Hz"))
    st.stream(StreamEvent("b", "resync", "resynchronised (...): 3600 windows rejected"))
    assert st.beds_summary()["b"]["state"] == "live"


def test_alarm_history_onset_clear_and_acknowledge():
    st = StationState(clock=lambda: 1000.0)
    st.alarm(AlarmEvent("b", "MI", "on", 300, 100, 0.7, 0.2))
    assert st.beds_summary()["b"]["alarms"] == ["MI"]
    version, alarms = st.alarm_list()
    assert alarms[0]["label"] == "MI" and alarms[0]["onset_s"] == 3.0 and alarms[0]["active"]
    assert st.acknowledge(alarms[0]["id"]) and not st.acknowledge(999)
    st.alarm(AlarmEvent("b", "MI", "off", 900, 100, 0.1, 0.2, cause="stream ended"))
    v2, alarms = st.alarm_list()
    assert v2 > version and alarms[0]["acked"] == 1000.0 and not alarms[0]["active"]
    assert st.beds_summary()["b"]["alarms"] == []


def test_twelve_lead_is_the_last_classified_window():
    st = StationState()
    t = np.arange(1500) / 100  # 15 s at 100 Hz, so the decimator passes samples through
    x = np.repeat(t[:, None], 12, axis=1).astype(np.float32)
    st.waveform(Chunk("b", x, 100))
    p = {"MI": 0.7}
    st.window(WindowResult("b", 200, 100, 1000, "ok", "", 1.0, p, p, ("MI",), ("MI",)))
    doc = st.twelve_lead("b")
    assert len(doc["signal"]) == 12 and len(doc["signal"][0]) == 1000
    assert doc["signal"][0][0] == 2.0 and doc["signal"][0][-1] == 11.99  # samples 200..1199
    assert doc["findings"] == ["MI"] and st.twelve_lead("nope") is None


def test_the_ring_wraps_and_keeps_the_last_strip_seconds():
    from mrm_edge.runtime.web.state import STRIP_SECONDS

    st = StationState()
    cap = STRIP_SECONDS * 100
    t = np.arange(cap * 2 + 37, dtype=np.float32)
    x = np.repeat(t[:, None], 12, axis=1)
    for i in range(0, len(x), 333):  # chunks that do not divide the ring
        st.waveform(Chunk("b", x[i : i + 333], 100))
    strip = st.strips({"b": 0}, {"b": len(x)}, lead=1)["b"]
    assert strip["i0"] == len(x) - cap and len(strip["v"]) == cap
    assert strip["v"][0] == len(x) - cap and strip["v"][-1] == len(x) - 1
