"""Reading a running monitor's event log from a test, shared by the tests that start a real
``mrm-edge monitor`` and watch its ``--events`` file."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path


def read_events(path: Path) -> list[dict]:
    """The complete JSON lines written so far (a line still being written is left out)."""
    text = path.read_text() if path.exists() else ""
    return [json.loads(s) for s in text.splitlines() if s.endswith("}")]


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``condition`` every 0.1 s; fail the test naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
