"""Who may talk to the station (``runtime/web/access.py``), against a real server on a free
loopback port over real sockets: a foreign Host (DNS rebinding) is refused, a socket or an
acknowledgement from another origin is refused, route parameters and bodies get 4xx (the
5,000-digit alarm id of issue 20 included), and every response carries the security
headers."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("starlette", reason="the web view needs: pip install 'mrm-edge[web]'")
pytest.importorskip("uvicorn", reason="the web view needs: pip install 'mrm-edge[web]'")
websockets = pytest.importorskip("websockets", reason="pip install 'mrm-edge[web]'")

from mrm_edge.runtime.web.config import WebConfig  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from .station import raise_alarm, raw_http, running_station  # noqa: E402


def _get(port: int, path: str, host: str, extra: str = "") -> tuple[int, bytes]:
    return raw_http(
        port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode()
    )


def _ack(port: int, alarm: str, headers: str = "X-MRM-Station: 1\r\n", body: bytes = b"") -> int:
    req = (
        f"POST /api/alarms/{alarm}/ack HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return raw_http(port, req + body)[0]


def _acked(server, alarm: int) -> bool:
    return next(a for a in server.state.alarm_list()[1] if a["id"] == alarm)["acked"] is not None


def _one_line_reason(response: bytes) -> str:
    body = response.split(b"\r\n\r\n", 1)[1].decode()
    assert "Traceback" not in body and body.count("\n") == 1, body
    return body


@pytest.mark.parametrize(
    "host", ["attacker.example", "attacker.example:{port}", "127.0.0.1.nip.io"]
)
def test_a_foreign_host_is_refused_on_page_api_and_socket(served, host):
    port = served.port
    host = host.format(port=port)
    for path in ("/", "/api/state", "/static/app.js", "/api/alarms/1/ack"):
        status, resp = _get(port, path, host)
        assert status == 421, (path, resp[:200])
        assert "its own address" in _one_line_reason(resp)
    upgrade = (
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    )
    status, resp = raw_http(port, f"GET /ws HTTP/1.1\r\nHost: {host}\r\n{upgrade}\r\n".encode())
    assert status == 421 and b"snapshot" not in resp


def test_its_own_names_are_served(served):
    port = served.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}"):
        status, resp = _get(port, "/api/state", host)
        assert status == 200, (host, resp[:200])
        assert json.loads(resp.split(b"\r\n\r\n", 1)[1])["type"] == "snapshot"


def test_a_socket_from_another_origin_is_refused_and_its_own_is_served(served):
    url = f"ws://127.0.0.1:{served.port}/ws"
    for origin in (
        "http://127.0.0.2:8000",  # another loopback address
        f"http://127.0.0.1:{served.port + 1}",  # another port: same site, another origin
        "http://attacker.example",
        "null",  # a sandboxed frame or a file:// page
    ):
        with pytest.raises(websockets.exceptions.InvalidStatus) as e:
            connect(url, origin=origin)
        assert e.value.response.status_code == 403, origin
    with connect(url, origin=f"http://127.0.0.1:{served.port}") as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "snapshot"
    with pytest.raises(websockets.exceptions.InvalidStatus) as e:  # cross-site per the browser
        connect(url, additional_headers={"Sec-Fetch-Site": "same-site"})
    assert e.value.response.status_code == 403


def test_an_acknowledgement_needs_the_pages_header_and_origin(served):
    port = served.port
    alarm = raise_alarm(served.state, "bed-03")
    # What a page of another origin can send: a no-cors POST (no custom header, a
    # cross-site Sec-Fetch-Site, its own Origin), or no Origin at all in an old browser.
    for headers in (
        "",
        "Origin: http://127.0.0.2:8000\r\nSec-Fetch-Site: cross-site\r\n",
        f"Origin: http://127.0.0.1:{port + 1}\r\nSec-Fetch-Site: same-site\r\n",
        "Content-Type: text/plain\r\n",
        "X-MRM-Station: 1\r\nOrigin: http://127.0.0.2:8000\r\n",
        "X-MRM-Station: 1\r\nSec-Fetch-Site: cross-site\r\n",
        "X-MRM-Station: 0\r\n",
    ):
        assert _ack(port, str(alarm), headers) == 403, headers
        assert not _acked(served, alarm)
    own = f"X-MRM-Station: 1\r\nOrigin: http://127.0.0.1:{port}\r\nSec-Fetch-Site: same-origin\r\n"
    assert _ack(port, str(alarm), own) == 200
    assert _acked(served, alarm)


def test_a_5000_digit_alarm_id_is_400_without_a_traceback(served, capfd):
    """Issue 20, finding 8: it was a 500 with a traceback on the terminal."""
    alarm = raise_alarm(served.state, "bed-02")
    status, resp = raw_http(
        served.port,
        f"POST /api/alarms/{'9' * 5000}/ack HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
        "X-MRM-Station: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode(),
    )
    assert status == 400 and b"alarm id must be a whole number" in resp
    assert not _acked(served, alarm)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "Exception" not in out + err


def test_route_parameters_and_bodies_get_4xx_never_5xx(served):
    port = served.port
    alarm = raise_alarm(served.state, "bed-01")
    assert _ack(port, "12abc") == 400
    assert _ack(port, "%C2%B2") == 400  # a superscript two: a digit to str.isdigit()
    assert _ack(port, "-1") == 400
    assert _ack(port, str(alarm + 1000)) == 404
    assert _ack(port, str(alarm), body=b"x" * 5000) == 413
    assert not _acked(served, alarm)
    host = f"127.0.0.1:{port}"
    assert _get(port, f"/api/alarms/{alarm}/ack", host)[0] == 405
    assert _get(port, "/api/bed/" + "x" * 5000, host)[0] == 404
    assert _get(port, "/static/../server.py", host)[0] == 404
    assert _get(port, "/api/state?lead=" + "%00" * 50, host)[0] == 200
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "FOO"):
        req = (
            f"{method} /api/state HTTP/1.1\r\nHost: {host}\r\nX-MRM-Station: 1\r\n"
            "Connection: close\r\n\r\n"
        )
        assert raw_http(port, req.encode())[0] in (400, 405), method


def test_every_response_carries_the_security_headers(served):
    port = served.port
    for path in ("/", "/static/app.js", "/api/state", "/api/clients", "/nowhere"):
        status, resp = _get(port, path, f"127.0.0.1:{port}")
        head = resp.split(b"\r\n\r\n", 1)[0].decode().lower()
        assert status in (200, 404), path
        csp = next(x for x in head.splitlines() if x.startswith("content-security-policy:"))
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, csp
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        for line in (
            "x-content-type-options: nosniff",
            "x-frame-options: deny",
            "referrer-policy: no-referrer",
            "cache-control: no-store",
        ):
            assert line in head.splitlines(), (path, line)
    status, resp = _get(port, "/", "attacker.example")
    assert status == 421 and b"nosniff" in resp  # refusals carry them too


def test_a_reverse_proxys_name_is_served_only_when_given():
    with running_station(WebConfig("127.0.0.1", 0, allow_hosts=("station.example",))) as server:
        port = server.port
        assert _get(port, "/api/state", "station.example")[0] == 200
        assert _get(port, "/api/state", "attacker.example")[0] == 421
        url = f"ws://127.0.0.1:{port}/ws"
        with connect(url, origin="https://station.example") as ws:
            assert json.loads(ws.recv(timeout=5))["type"] == "snapshot"
        with pytest.raises(websockets.exceptions.InvalidStatus):
            connect(url, origin="https://attacker.example")


@pytest.mark.parametrize("name", ["http://station.example", "station.example/path", "a b", ""])
def test_a_malformed_allowed_host_is_one_line(name):
    with pytest.raises(ValueError, match=r"--web-allow-host .*expected a host name"):
        WebConfig("127.0.0.1", 0, allow_hosts=(name,)).check()


def test_the_page_has_no_inline_script_and_app_js_no_markup_sink():
    """What the CSP enforces in the browser, checked on the files: index.html loads its
    script and style from files (no inline script, style or handler), and app.js builds
    every element with textContent (no innerHTML or other parser of server strings)."""
    import re
    from importlib import resources

    static = resources.files("mrm_edge.runtime.web").joinpath("static")
    page = static.joinpath("index.html").read_text()
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/app.js">']
    assert "<style" not in page and not re.search(r"\s(on\w+|style)\s*=", page)
    app = static.joinpath("app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "setAttribute(\"on", "srcdoc"):  # fmt: skip
        assert sink not in app, sink
