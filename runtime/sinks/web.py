"""``WebSink``: feeds the central station (``runtime/web/``) and runs its server. A display:
its delivery is ``lossy``; the raw chunks it takes for the strips are decimated on its own
sink thread."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mrm_edge.runtime.sinks.base import RunInfo, Sink
from mrm_edge.runtime.web.state import StationState

if TYPE_CHECKING:
    from mrm_edge.runtime.sinks.summary import Summary
    from mrm_edge.runtime.web.config import WebConfig
    from rich.console import Console


class WebSink(StationState, Sink):
    """The station's state, fed as a sink (``window``, ``alarm``, ``stream``, ``notice``,
    ``waveform`` and ``backend_switch`` are StationState's own), and its server while the
    run lasts at ``config``; the address is printed on ``console`` at open (the token never
    is)."""

    delivery = "lossy"
    wants_waveform = True

    def __init__(self, config: WebConfig, console: Console | None = None) -> None:
        from mrm_edge.runtime.web.server import StationServer

        super().__init__()
        self.server = StationServer(self, config)  # binds now: a busy port fails early
        self.console = console

    def open(self, info: RunInfo) -> None:
        super().open(info)
        self.server.start()
        if self.console is not None:
            note = " (open it with ?token=<your token>)" if self.server.config.token else ""
            url = self.server.url
            self.console.print(f"[bold]central station[/bold] {url}{note}", highlight=False)

    def close(self, summary: Summary | None) -> None:
        self.server.stop()  # idempotent
