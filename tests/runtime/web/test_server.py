"""The station server on its own, with a real uvicorn on a free loopback port: snapshot and
frames over a real WebSocket, the token guard (401 on page, API and socket), a stuck client
that loses frames without slowing a reading one, and ``--web`` parsing."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

pytest.importorskip("starlette", reason="the web view needs: pip install 'mrm-edge[web]'")
pytest.importorskip("uvicorn", reason="the web view needs: pip install 'mrm-edge[web]'")
websockets = pytest.importorskip("websockets", reason="pip install 'mrm-edge[web]'")

from mrm_edge.runtime.web.config import WebConfig, parse_bind  # noqa: E402
from mrm_edge.runtime.web.server import StationServer  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from .station import BEDS, get_json, station_state, stuck_websocket, wait_for  # noqa: E402


def _ws_url(server: StationServer, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}/ws{query}"


def test_snapshot_then_frames_carry_advancing_strips(served):
    with connect(_ws_url(served, "?lead=V2")) as ws:
        snap = json.loads(ws.recv(timeout=5))
        assert snap["type"] == "snapshot" and snap["lead"] == "V2"
        assert set(snap["beds"]) == {f"bed-{i:02d}" for i in range(BEDS)}
        assert snap["header"]["alarm_labels"] == ["CD", "MI"]
        ends = []
        for _ in range(12):
            frame = json.loads(ws.recv(timeout=5))
            assert frame["type"] == "frame"
            strip = frame["strips"].get("bed-00")
            if strip:
                assert all(abs(v) <= 1.0001 for v in strip["v"])  # the sine, decimated
                ends.append(strip["i0"] + len(strip["v"]))
        assert len(ends) >= 5 and ends == sorted(ends) and ends[-1] > ends[0]


@pytest.mark.parametrize("served", ["s3cret-token"], indirect=True)
def test_token_required_on_page_api_and_socket(served):
    base = f"http://127.0.0.1:{served.port}"
    for path in ("/", "/api/state", "/static/app.js"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + path, timeout=5)
        assert e.value.code == 401, path
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(base + "/api/state?token=wrong", timeout=5)
    assert e.value.code == 401
    assert get_json(base + "/api/state?token=s3cret-token")["type"] == "snapshot"
    assert get_json(base + "/api/state", {"Authorization": "Bearer s3cret-token"})["beds"]
    with pytest.raises(websockets.exceptions.InvalidStatus) as e:
        connect(_ws_url(served))
    assert e.value.response.status_code == 401
    with connect(_ws_url(served, "?token=s3cret-token")) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "snapshot"


def test_a_stuck_client_loses_frames_and_the_reading_one_does_not(served):
    # The stuck client reads nothing and has a tiny receive buffer, so the server's
    # bounded send buffer and then its queue fill up.
    stuck = stuck_websocket(served.port, "/ws?lead=I")
    with connect(_ws_url(served)) as ws:
        ws.recv(timeout=5)
        t0, n = time.monotonic(), 0
        while time.monotonic() - t0 < 4.0:
            ws.recv(timeout=5)
            n += 1
        before = n / (time.monotonic() - t0)
        clients = wait_for(
            lambda: [
                c
                for c in get_json(f"http://127.0.0.1:{served.port}/api/clients")
                if c["missed"] > 0
            ],
            60,
            "the stuck client to miss frames",
        )
        assert clients[0]["lead"] == "I" and clients[0]["resyncs"] >= 1
        t0, n = time.monotonic(), 0
        while time.monotonic() - t0 < 4.0:
            ws.recv(timeout=5)
            n += 1
        after = n / (time.monotonic() - t0)
        mine = [
            c for c in get_json(f"http://127.0.0.1:{served.port}/api/clients") if c["lead"] == "II"
        ]
    stuck.close()
    assert mine[0]["missed"] == 0
    assert before >= 7 and after >= 0.7 * before, (before, after)


def test_parse_bind_and_the_non_loopback_rule():
    assert parse_bind("8765") == ("127.0.0.1", 8765)
    assert parse_bind("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_bind("[::1]:80") == ("::1", 80)
    with pytest.raises(ValueError, match="expected \\[HOST:\\]PORT"):
        parse_bind("host:http")
    with pytest.raises(ValueError, match="needs an access token"):
        WebConfig("0.0.0.0", 8765, None).check()
    WebConfig("0.0.0.0", 8765, "t").check()
    WebConfig("::1", 8765, None).check()


def test_a_busy_port_fails_before_the_run(served):
    with pytest.raises(ValueError, match=f"127.0.0.1:{served.port}: cannot bind"):
        StationServer(station_state(), WebConfig("127.0.0.1", served.port))


def test_the_page_fetches_nothing_from_elsewhere(served):
    base = f"http://127.0.0.1:{served.port}"
    for path in ("/", "/static/app.js", "/static/style.css"):
        with urllib.request.urlopen(base + path, timeout=5) as r:
            text = r.read().decode()
        assert "http://" not in text and "https://" not in text, path
        assert "//cdn" not in text and "@import" not in text, path
    with urllib.request.urlopen(base + "/", timeout=5) as r:
        page = r.read().decode()
    assert 'src="/static/app.js"' in page and 'href="/static/style.css"' in page
