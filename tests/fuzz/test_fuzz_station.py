"""Fuzzing the central station's routes, bounded in time: random methods, paths, alarm ids,
bed names, query strings, headers (Host, Origin, Sec-Fetch-Site, lengths...) and bodies,
sent over real sockets to a real ``mrm-edge monitor --web`` (synthetic patients, so no data
is needed). Every answer is a 2xx-4xx (or a closed connection for bytes that are no HTTP),
never a 5xx, and no response and nothing on the monitor's terminal holds a traceback; the
monitor still serves its own page afterwards."""

from __future__ import annotations

import contextlib
import socket
import urllib.parse
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

pytest.importorskip("starlette", reason="the web view needs: pip install 'mrm-edge[web]'")
pytest.importorskip("uvicorn", reason="the web view needs: pip install 'mrm-edge[web]'")

from tests import fuzz
from tests.runtime.web.station import MonitorProcess, get_json

pytestmark = pytest.mark.slow
CAP_S = 5.0  # per example; an answer takes milliseconds
TRACEBACK = ("Traceback", "Exception in ASGI", 'File "')


@pytest.fixture(scope="module")
def monitor():
    mon = MonitorProcess(["--streams", "3", "--duration", "300", "--web", "127.0.0.1:0"])
    url = mon.wait_url()
    yield mon, int(url.rsplit(":", 1)[1].strip("/"))
    mon.stop()


def _text(max_size: int = 40) -> st.SearchStrategy[str]:
    return st.text(st.characters(codec="utf-8"), max_size=max_size)


_ID = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    # Around the int64 edge and Python's 4,300-digit int() limit (issue 20's 500).
    st.sampled_from([18, 19, 20, 4300, 4301, 5000]).map(lambda n: "9" * n),
    _text(12),
)
_SEGMENT = st.one_of(_ID, _text(), st.sampled_from(["..", "%2e%2e", "app.js", "index.html"]))
_PATH = st.one_of(
    st.just("/"),
    st.builds("/api/alarms/{}/ack".format, _ID),
    st.builds("/api/bed/{}".format, _SEGMENT),
    st.builds("/static/{}".format, _SEGMENT),
    st.sampled_from(["/api/state", "/api/clients", "/ws", "/api", "/favicon.ico"]),
    st.builds("/{}".format, _SEGMENT),
)
_QUERY = st.one_of(st.just(""), st.builds("lead={}&token={}".format, _text(8), _text(8)))
_METHOD = st.one_of(
    st.sampled_from(["GET", "POST"]),
    st.sampled_from(["HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"]),
    st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), min_size=1, max_size=12),
)
_EXTRA = {
    "Content-Type": st.sampled_from(["application/json", "text/plain", "multipart/x"]),
    "Cookie": st.builds("mrm_edge_token={}".format, _text(20)),
    "Authorization": st.builds("Bearer {}".format, _text(20)),
    "Upgrade": st.just("websocket"),
    "X-Junk": _text(200),
}
# Half the requests look like the station's own page (so that they reach the routes), half
# come from anywhere (another origin, a foreign or malformed Host, a cross-site fetch).
_HEADERS = st.one_of(
    st.fixed_dictionaries(
        {"Host": st.just("{own}"), "X-MRM-Station": st.just("1")},
        optional={
            "Origin": st.just("http://{own}"),
            "Sec-Fetch-Site": st.just("same-origin"),
            **_EXTRA,
        },
    ),
    st.fixed_dictionaries(
        {"Host": st.sampled_from(["{own}", "localhost:{port}", "attacker.example", "", "[::1"])},
        optional={
            "Origin": st.sampled_from(["http://{own}", "http://127.0.0.2:8000", "null", "x"]),
            "Sec-Fetch-Site": st.sampled_from(["same-origin", "same-site", "cross-site", "none"]),
            "X-MRM-Station": st.sampled_from(["1", "0", ""]),
            **_EXTRA,
        },
    ),
)


def _request(method: str, path: str, query: str, headers: dict[str, str], body: bytes, port: int):
    own = f"127.0.0.1:{port}"
    target = urllib.parse.quote(path, safe="/%") + (
        "?" + urllib.parse.quote(query, "=&") if query else ""
    )
    lines = [f"{method} {target} HTTP/1.1"]
    for k, v in headers.items():
        value = v.format(own=own, port=port) if "{" in v and k in ("Host", "Origin") else v
        lines.append(f"{k}: {value}")
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + body


def _send(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=CAP_S) as sock:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(request)
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                data += chunk
    return data


@settings(
    max_examples=600,
    deadline=timedelta(seconds=CAP_S),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,  # CI: the same examples every run, no flaky new finds mid-review
)
@given(method=_METHOD, path=_PATH, query=_QUERY, headers=_HEADERS, body=st.binary(max_size=3000))
def test_no_route_answers_5xx_or_a_traceback(monitor, method, path, query, headers, body):
    mon, port = monitor
    request = _request(method, path, query, headers, body, port)
    with fuzz.hard_cap(CAP_S, f"{method} {path[:60]}"):
        response = _send(port, request)
    status = response.split(b"\r\n", 1)[0].split(b" ")
    event(f"status {status[1].decode() if len(status) > 1 else 'none (closed)'}")
    if response:  # empty: closed without an answer (bytes h11 would not parse)
        assert status[0] == b"HTTP/1.1" and status[1][:1] in (b"1", b"2", b"3", b"4"), response[
            :300
        ]
    assert not any(t.encode() in response for t in TRACEBACK), response[:500]
    assert not any(t in mon.output for t in TRACEBACK), mon.output[-2000:]


def test_the_station_still_serves_after_the_fuzzing(monitor):
    mon, port = monitor
    assert get_json(f"http://127.0.0.1:{port}/api/state")["type"] == "snapshot"
    assert mon.proc.poll() is None
    assert not any(t in mon.output for t in TRACEBACK), mon.output[-2000:]
