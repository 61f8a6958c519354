"""The ``served`` fixture: a real station server on a free loopback port (a token with
``@pytest.mark.parametrize("served", ["TOKEN"], indirect=True)``)."""

from __future__ import annotations

import pytest

from .station import running_station


@pytest.fixture
def served(request):
    pytest.importorskip("starlette", reason="the web view needs: pip install 'mrm-edge[web]'")
    pytest.importorskip("uvicorn", reason="the web view needs: pip install 'mrm-edge[web]'")
    from mrm_edge.runtime.web.config import WebConfig

    with running_station(WebConfig("127.0.0.1", 0, getattr(request, "param", None))) as server:
        yield server
