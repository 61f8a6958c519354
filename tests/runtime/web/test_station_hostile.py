"""The central station against hostile pages and hostile names, in a real headless Chromium
and a real ``mrm-edge monitor --web`` (issue 20, findings 2 and 3):

* a page of another origin (served by this test on 127.0.0.2) opened in the same browser
  can neither read the station (its socket is refused, no snapshot) nor acknowledge an
  alarm (no-cors POST, form POST and CORS fetch alike: the alarm stays unacknowledged in
  the server's state);
* a DNS-rebound name (Chromium resolving ``attacker.example`` to the station) and a raw
  request with ``Host: attacker.example`` are refused;
* markup in the model card's name (a model exported from a card whose name is an
  ``<img onerror>``) and in a stream id (a record of that name) is shown as text, and no
  script of it runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the web view needs: pip install 'mrm-edge[web]'")
pytest.importorskip("uvicorn", reason="the web view needs: pip install 'mrm-edge[web]'")

from .station import (
    CLI,
    FLAGGED_RECORD,
    NORMAL_RECORDS,
    REPO,
    MonitorProcess,
    chromium_paths,
    get_json,
    new_browser,
    raw_http,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.realdata]
MODEL_NAME = '<img src=x onerror="window.__pwned_model=1">'
STREAM_ID = "<img src=x onerror=window.__pwned_stream=1>"


@pytest.fixture(scope="module")
def hostile_model(tmp_path_factory) -> Path:
    """The shipped model's weights exported from a card whose name is markup (so the
    model is consistent, hashes and all: only its name is hostile)."""
    from mrm_edge.artifacts import default_model_dir

    shipped = default_model_dir()
    out = tmp_path_factory.mktemp("hostile-model")
    for name in ("card.json", "model.safetensors"):
        shutil.copy(shipped / name, out / name)
    card = json.loads((out / "card.json").read_text())
    card["name"] = MODEL_NAME
    (out / "card.json").write_text(json.dumps(card, indent=2))
    r = subprocess.run(
        [*CLI, "export", "--model", str(out), "--no-engine"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def station(ptbxl_root, hostile_model, tmp_path_factory):
    chromium_paths()
    records = tmp_path_factory.mktemp("records")
    source = ptbxl_root / "records100" / "00000"
    (records / f"{STREAM_ID}.hea").symlink_to(source / f"{FLAGGED_RECORD}.hea")
    (records / f"{FLAGGED_RECORD}.dat").symlink_to(source / f"{FLAGGED_RECORD}.dat")
    normal = source / NORMAL_RECORDS[0]
    mon = MonitorProcess(
        ["--model", str(hostile_model), "--source", f"wfdb:{records / STREAM_ID},{normal}",
         "--loop", "--speed", "2x", "--duration", "300", "--web", "127.0.0.1:0"]
    )  # fmt: skip
    url = mon.wait_url()
    port = int(url.rsplit(":", 1)[1].strip("/"))
    alarm = wait_for(
        lambda: [a for a in get_json(url + "api/state")["alarms"] if a["bed"] == STREAM_ID],
        90,
        "an alarm on the hostile-named bed",
    )[0]
    yield {"mon": mon, "url": url, "port": port, "alarm": alarm["id"]}
    mon.stop()


@pytest.fixture(scope="module")
def other_origin():
    """A plain page at http://127.0.0.2:PORT/: another origin (and another site)."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><title>elsewhere</title><p>another origin</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.2", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.2:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


# Run in the other origin's page: every way it has to read the station or acknowledge.
ATTACK = """
const [port, id, done] = arguments;
const base = `http://127.0.0.1:${port}`, ack = `${base}/api/alarms/${id}/ack`;
const out = {ws: "pending", wsMessages: 0};
(async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  ws.onopen = () => { out.ws = "open"; };
  ws.onmessage = () => { out.wsMessages += 1; };
  ws.onerror = () => { if (out.ws === "pending") out.ws = "refused"; };
  const attempt = async (name, url, init) => {
    try { const r = await fetch(url, init); out[name] = `answered ${r.type} ${r.status}`; }
    catch (e) { out[name] = `failed ${e.name}`; }
  };
  await attempt("noCors", ack, {method: "POST", mode: "no-cors"});
  await attempt("noCorsBody", ack,
    {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: "{}"});
  await attempt("cors", ack, {method: "POST", headers: {"X-MRM-Station": "1"}});
  await attempt("read", `${base}/api/state`, {});
  const frame = document.createElement("iframe");
  frame.name = "sink";
  document.body.append(frame);
  const form = document.createElement("form");
  form.method = "POST"; form.action = ack; form.target = "sink";
  document.body.append(form);
  form.submit();
  setTimeout(() => done(out), 4000);
})();
"""


def test_a_page_of_another_origin_can_neither_read_nor_acknowledge(station, other_origin):
    b = new_browser()
    try:
        b.set_script_timeout(30)
        b.get(other_origin)
        out = b.execute_async_script(ATTACK, station["port"], station["alarm"])
    finally:
        b.quit()
    assert out["ws"] == "refused" and out["wsMessages"] == 0, out
    assert out["cors"].startswith("failed") and out["read"].startswith("failed"), out
    alarms = get_json(station["url"] + "api/state")["alarms"]
    mine = next(a for a in alarms if a["id"] == station["alarm"])
    assert mine["acked"] is None, (out, mine)  # not by the no-cors POSTs nor the form
    assert "Traceback" not in station["mon"].output


def test_a_rebound_name_and_a_foreign_host_are_refused(station):
    port = station["port"]
    # DNS rebinding as the browser sees it: attacker.example resolves to the station.
    b = new_browser(extra=("--host-resolver-rules=MAP attacker.example 127.0.0.1",))
    try:
        b.get(f"http://attacker.example:{port}/")
        body = b.find_element("tag name", "body").text
        assert body.startswith("421: this central station answers only to its own address")
        assert b.execute_script("return window.__station === undefined")
        b.get(f"http://attacker.example:{port}/api/state")
        assert "snapshot" not in b.page_source
    finally:
        b.quit()
    request = "GET /api/state HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n"
    status, response = raw_http(port, request.encode())
    assert status == 421 and b"snapshot" not in response and b"Traceback" not in response


def test_markup_in_the_card_name_and_a_stream_id_is_text(station, tmp_path):
    b = new_browser()
    try:
        b.get(station["url"])
        wait_for(lambda: b.find_elements("css selector", ".alarm-card"), 30, "the alarm banner")
        assert b.find_element("id", "model").text == f"model {MODEL_NAME}"
        names = b.execute_script(
            "return [...document.querySelectorAll('.tile')].map(t => [t.dataset.bed,"
            " t.querySelector('.name').textContent])"
        )
        assert [STREAM_ID, STREAM_ID] in names, names
        assert STREAM_ID in b.find_element("id", "banner").text
        assert STREAM_ID in b.find_element("id", "history-rows").text
        b.execute_script(
            "[...document.querySelectorAll('.tile')].find(t => t.dataset.bed === arguments[0])"
            ".click()",
            STREAM_ID,
        )
        wait_for(lambda: b.find_element("id", "modal-title").text, 10, "the 12-lead view")
        assert b.find_element("id", "modal-title").text == f"{STREAM_ID} — 12-lead"
        ran = b.execute_script(
            "return [document.querySelectorAll('img').length,"
            " window.__pwned_model, window.__pwned_stream]"
        )
        assert ran == [0, None, None], ran  # no element made of them, none of their script ran
        b.save_screenshot(str(tmp_path / "hostile-names.png"))
    finally:
        b.quit()
