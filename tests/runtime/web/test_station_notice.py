"""A system notice (``RunInfo.notify``, e.g. the event log's disk is full) in the central
station, in a real headless Chromium against a real ``StationServer`` on a free loopback
port: shown at once, as text (markup in it stays text), hidden when there is none.

Skipped with the reason where there is no Chromium + chromedriver.
"""

from __future__ import annotations

import pytest

pytest.importorskip("starlette", reason="the web view needs: pip install 'mrm-edge[web]'")
pytest.importorskip("uvicorn", reason="the web view needs: pip install 'mrm-edge[web]'")

from mrm_edge.runtime.web.config import WebConfig
from mrm_edge.runtime.web.server import StationServer
from mrm_edge.runtime.web.state import StationState

from tests.runtime.sinks.records import info

from .station import chromium_paths, new_browser, wait_for

pytestmark = pytest.mark.slow


def test_a_system_notice_shows_at_once_as_text() -> None:
    chromium_paths()
    state = StationState()
    state.open(info())
    server = StationServer(state, WebConfig("127.0.0.1", 0))
    server.start()
    browser = new_browser()
    try:
        browser.get(server.url)
        notice = browser.find_element("id", "notice")
        wait_for(lambda: browser.execute_script("return window.__station.frames") > 0, 30, "frames")
        assert not notice.is_displayed()  # no notice: nothing shown
        text = "event log <img src=x onerror=window.__pwned=1>: No space left on device"
        state.notice(text)
        wait_for(lambda: notice.text == text, 10, "the notice, as text")
        assert notice.is_displayed()
        assert browser.find_elements("css selector", "#notice *") == []  # no element parsed
        assert browser.execute_script("return window.__pwned") is None
        state.notice("")
        wait_for(lambda: not notice.is_displayed(), 10, "the notice hidden again")
    finally:
        browser.quit()
        server.stop()
