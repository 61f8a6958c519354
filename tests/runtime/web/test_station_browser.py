"""The central station in a real headless Chromium, against a real ``mrm-edge monitor --web``
on a free loopback port, replaying four real PTB-XL records (three the shipped model reads
as no finding, one it flags MI / STTC). A screenshot per test lands in the test's temp dir.

Skipped with the reason where there is no Chromium + chromedriver (``.ci/run`` installs
them) or no PTB-XL data.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the web view needs: pip install 'mrm-edge[web]'")
pytest.importorskip("uvicorn", reason="the web view needs: pip install 'mrm-edge[web]'")

from .station import (
    FLAGGED_RECORD,
    NORMAL_RECORDS,
    MonitorProcess,
    chromium_paths,
    get_json,
    new_browser,
    stuck_websocket,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.realdata]
ALL = (*NORMAL_RECORDS, FLAGGED_RECORD)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("station-screenshots")


@pytest.fixture(scope="module")
def station(ptbxl_root, tmp_path_factory):
    chromium_paths()  # skip before starting anything when there is no browser
    records = ",".join(str(ptbxl_root / "records100" / "00000" / r) for r in ALL)
    events = tmp_path_factory.mktemp("station") / "events.jsonl"
    mon = MonitorProcess(
        [
            "--source",
            f"wfdb:{records}",
            "--loop",
            "--speed",
            "2x",
            "--duration",
            "300",
            "--events",
            str(events),
            "--web",
            "127.0.0.1:0",
        ]
    )
    url = mon.wait_url()
    browser = new_browser()
    browser.get(url)
    yield {"mon": mon, "url": url, "browser": browser, "events": events}
    browser.quit()
    mon.stop()


def _station(browser) -> dict:
    return browser.execute_script("return window.__station")


def _frame_rate(browser, seconds: float = 3.0) -> float:
    a, t0 = _station(browser)["frames"], time.monotonic()
    time.sleep(seconds)
    return (_station(browser)["frames"] - a) / (time.monotonic() - t0)


def test_every_bed_has_a_tile_and_its_strip_advances(station, shots):
    b = station["browser"]
    wait_for(lambda: len(b.find_elements("css selector", ".tile")) == len(ALL), 30, "four tiles")
    beds = sorted(t.get_attribute("data-bed") for t in b.find_elements("css selector", ".tile"))
    assert beds == sorted(ALL)
    wait_for(lambda: len(_station(b)["heads"]) == len(ALL), 30, "strips on every tile")
    first = _station(b)["heads"]
    time.sleep(1.0)
    second = _station(b)["heads"]
    for bed in ALL:  # 2x replay: about 200 display samples a second
        assert second[bed] - first[bed] > 50, (bed, first[bed], second[bed])
    header = b.find_element("id", "header").text
    assert "mrm-net-ptbxl-superdiagnostic" in header and "windows/s" in header
    b.save_screenshot(str(shots / "tiles.png"))


def test_the_flagged_bed_alarms_and_acknowledging_it_works(station, shots):
    b = station["browser"]
    tile = f".tile[data-bed='{FLAGGED_RECORD}']"
    wait_for(
        lambda: b.find_element("css selector", tile).get_attribute("data-alarm"),
        60,
        "the flagged bed's alarm",
    )
    alarm = set(b.find_element("css selector", tile).get_attribute("data-alarm").split(","))
    assert {"MI", "STTC"} <= alarm and "NORM" not in alarm
    for bed in NORMAL_RECORDS:  # NORM above threshold is no finding, never an alarm
        t = b.find_element("css selector", f".tile[data-bed='{bed}']")
        assert t.get_attribute("data-alarm") == "", bed
        assert "no finding" in t.text
    cards = b.find_elements("css selector", ".alarm-card")
    assert cards and all(FLAGGED_RECORD in c.text for c in cards)
    assert "MI" in " ".join(c.text for c in cards)
    b.save_screenshot(str(shots / "alarm.png"))
    buttons = b.find_elements("css selector", ".alarm-card button.ack")
    n = len(buttons)
    buttons[0].click()
    wait_for(
        lambda: len(b.find_elements("css selector", ".alarm-card button.ack")) == n - 1,
        10,
        "the acknowledged alarm to lose its ACK button",
    )
    alarms = get_json(station["url"] + "api/state")["alarms"]
    acked = [a for a in alarms if a["acked"]]
    assert len(acked) == 1 and acked[0]["bed"] == FLAGGED_RECORD
    assert b.find_elements("css selector", "#history-rows tr")  # the history lists it
    assert "acknowledged" in b.find_element("id", "banner").text


def test_the_twelve_lead_view_renders(station, shots):
    b = station["browser"]
    b.find_element("css selector", f".tile[data-bed='{FLAGGED_RECORD}']").click()
    wait_for(lambda: (_station(b).get("twelve") or {}).get("bed"), 10, "the 12-lead view")
    assert _station(b)["twelve"]["samples"] == 1000  # 10 s at 100 Hz, every lead
    inked = b.execute_script(
        """const c = document.getElementById('twelve');
           const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
           let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 60 && d[i+1] < 60) n++;
           return [c.width, c.height, n];"""
    )
    assert inked[0] == 1000 and inked[1] == 480  # 250 x 120 mm at 4 px/mm
    assert inked[2] > 5000  # black ink of 13 traces on the pink grid
    title = b.find_element("id", "modal-title").text
    assert FLAGGED_RECORD in title and "MI" in b.find_element("id", "modal-probs").text
    b.save_screenshot(str(shots / "twelve-lead.png"))
    b.find_element("id", "modal-close").click()


def test_a_stuck_second_client_changes_nothing_for_the_first(station, shots):
    b, url = station["browser"], station["url"]
    port = int(url.rsplit(":", 1)[1].strip("/"))
    before = _frame_rate(b)
    stuck = stuck_websocket(port, "/ws?lead=V1")
    try:
        wait_for(
            lambda: any(c["missed"] > 0 for c in get_json(url + "api/clients")),
            60,
            "the stuck client to miss frames",
        )
        after = _frame_rate(b)
        clients = get_json(url + "api/clients")
    finally:
        stuck.close()
    page = [c for c in clients if c["lead"] == "II"]
    assert page and page[0]["missed"] == 0
    assert before >= 8 and after >= 0.8 * before, (before, after)
    assert b.execute_script("return document.querySelectorAll('.tile').length") == len(ALL)


def test_the_page_reconnects_after_a_monitor_restart_and_accounting_held(
    station, ptbxl_root, shots
):
    b, url = station["browser"], station["url"]
    opens = _station(b)["opens"]
    assert station["mon"].stop() == 0
    # The event log is complete and every window is accounted for (nothing dropped, the
    # stuck client above notwithstanding).
    lines = [json.loads(x) for x in station["events"].read_text().splitlines()]
    summary = lines[-1]
    assert summary["type"] == "summary"
    assert summary["windows"] == summary["classified"] + summary["rejected"] + summary["dropped"]
    assert summary["dropped"] == 0 and summary["errors"] == []
    assert sum(1 for x in lines if x["type"] == "window") == summary["windows"]
    wait_for(lambda: not _station(b)["connected"], 15, "the page to notice the monitor left")
    port = url.rsplit(":", 1)[1].strip("/")
    record = str(ptbxl_root / "records100" / "00000" / NORMAL_RECORDS[0])
    again = MonitorProcess(
        ["--source", f"wfdb:{record}", "--loop", "--duration", "120", "--web", f"127.0.0.1:{port}"]
    )
    try:
        again.wait_url()
        wait_for(lambda: _station(b)["opens"] > opens, 30, "the page to reconnect by itself")
        wait_for(lambda: _station(b)["connected"], 10, "the reconnected socket")
        assert "live" in b.find_element("id", "conn").text
        b.save_screenshot(str(shots / "reconnected.png"))
    finally:
        again.stop()


def test_a_token_guards_page_and_socket_and_is_never_printed(ptbxl_root, shots):
    chromium_paths()
    record = str(ptbxl_root / "records100" / "00000" / NORMAL_RECORDS[0])
    token = "tok-7f3a9c-never-logged"
    mon = MonitorProcess(
        ["--source", f"wfdb:{record}", "--loop", "--duration", "120", "--web", "127.0.0.1:0"],
        env={"MRM_EDGE_WEB_TOKEN": token},
    )
    url = mon.wait_url()
    b = new_browser()
    try:
        b.get(url)
        assert "401" in b.find_element("tag name", "body").text
        b.get(url + "?token=" + token)  # sets the cookie, then drops the token from the URL
        wait_for(lambda: b.find_elements("css selector", ".tile"), 30, "a tile with the token")
        assert "token" not in b.current_url
        wait_for(lambda: _station(b)["frames"] > 5, 15, "frames over the guarded socket")
        b.save_screenshot(str(shots / "token.png"))
    finally:
        b.quit()
        mon.stop()
    assert token not in mon.output
