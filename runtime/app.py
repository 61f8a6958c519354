"""The composition root of ``mrm-edge monitor``: model, backend chain, source and sinks put
together around a ``Monitor`` (``open_monitor``), run with SIGINT/SIGTERM wired to a clean
stop. Nothing here prints: what the command shows is its sinks' business."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mrm_edge.runtime.backends.base import Backend
from mrm_edge.runtime.config import MonitorConfig
from mrm_edge.runtime.engine import Monitor
from mrm_edge.runtime.model import DeployedModel
from mrm_edge.runtime.sinks.base import Sink
from mrm_edge.runtime.sinks.registry import SinkSettings, make_sink
from mrm_edge.runtime.sinks.summary import Summary
from mrm_edge.runtime.sources.base import Source

if TYPE_CHECKING:
    from mrm_edge.runtime.web.config import WebConfig
    from rich.console import Console


class StopRequests:
    """SIGINT/SIGTERM as stops of the monitor: the first drains, a second does not
    (docs/monitor.md). One before there is a monitor (model load, backend activation) is kept
    for ``attach()``, so that the run still ends with its summary."""

    def __init__(self) -> None:
        self.monitor: Monitor | None = None
        self.received: list[str] = []  # the signals' names, in order

    def signal(self, name: str) -> None:
        self.received.append(name)
        if self.monitor is not None:
            self.monitor.stop(f"signal {name}", drain=len(self.received) == 1)

    def attach(self, monitor: Monitor) -> None:
        # Set first: a signal from here on goes to the monitor directly.
        self.monitor = monitor
        for i, name in enumerate(list(self.received)):
            monitor.stop(f"signal {name}", drain=i == 0)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequests]:
    """While inside, SIGINT/SIGTERM stop the monitor given to the yielded
    ``StopRequests.attach`` cleanly; see ``StopRequests``. Only the main thread can own
    signal handlers; elsewhere this installs none."""
    stops = StopRequests()
    if threading.current_thread() is not threading.main_thread():
        yield stops
        return

    def handler(signum: int, frame: Any) -> None:
        stops.signal(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stops
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def monitor_sink_names(events_path: str | Path | None, ui: bool) -> list[str]:
    """The sinks ``mrm-edge monitor`` runs, in opening order: the report (first opened,
    last closed), the event log if asked for, the live view if wanted."""
    names = ["report"]
    if events_path is not None:
        names.append("jsonl")
    if ui:
        names.append("live")
    return names


@contextlib.contextmanager
def open_monitor(
    model: DeployedModel,
    source: Source,
    config: MonitorConfig | None = None,
    backend: str | Backend = "auto",
    precision: str | None = None,
    *,
    sinks: Sequence[Sink] = (),
) -> Iterator[Monitor]:
    """The one way a monitor is built, ready to ``run()``. ``backend``: a name (with
    ``precision``) picked and activated with its fallback chain (``selection.activate_backend``;
    BackendUnavailable when nothing can run), or a Backend its caller owns, run as given
    without fallback (what a benchmark times). ``sinks`` by keyword. On leaving: the source
    closed, and a backend activated here deactivated unless an abandoned inference may still
    be inside it (freeing a session under a running call is a crash, not a cleanup)."""
    from mrm_edge.runtime.selection import activate_backend

    try:
        if isinstance(backend, Backend):
            yield Monitor(model, backend, source, config, sinks=sinks, backend_reason="given")
            return
        be, reason, chain = activate_backend(model, backend, precision)
        monitor: Monitor | None = None
        try:
            monitor = Monitor(
                model, be, source, config, sinks=sinks, backend_reason=reason, fallbacks=chain
            )
            yield monitor
        finally:
            # A no-op if the monitor switched away from it.
            if monitor is None or not monitor.chain.in_use:
                be.deactivate()
    finally:
        source.close()


def run_monitor(
    model_dir: str | Path,
    source: Source | Callable[[DeployedModel], Source],
    config: MonitorConfig | None = None,
    *,
    backend: str = "auto",
    precision: str | None = None,
    events_path: str | Path | None = None,
    events_append: bool = False,
    ui: bool = True,
    console: Console | None = None,
    sinks: Sequence[str] | None = None,
    results: Sequence[Sink] = (),
    web: WebConfig | None = None,
    accept_card_tuning: bool = False,
) -> Summary:
    """Everything ``mrm-edge monitor`` does: load the model directory, build the sinks
    (``sinks`` names them; default :func:`monitor_sink_names`, plus the station when ``web``
    is given; ``results``: result sinks the caller built, opened after those), open the
    monitor (:func:`open_monitor`), run it until the source ends, ``config.duration_s`` or a
    signal, and return the summary. ``source``: a Source or a
    function of the loaded model that makes one. ModelLoadError, BackendUnavailable or
    ValueError (one line) before anything runs.
    """
    if console is None:
        from rich.console import Console

        console = Console()  # one console shared by the report and the live view
    # From the start: a signal during the load or the activation (seconds, the probe's up to
    # 15 s) is kept and stops the run as it starts, so the run still ends with its summary.
    with stop_on_signals() as stops:
        model = DeployedModel.load(model_dir, accept_card_tuning=accept_card_tuning)
        src = source if isinstance(source, Source) else source(model)
        names = monitor_sink_names(events_path, ui) if sinks is None else list(sinks)
        if web is not None and "web" not in names:
            names.append("web")
        log = None if events_path is None else Path(events_path)
        built: list[Sink] = []
        try:
            settings = SinkSettings(console, log, events_append=events_append, web=web)
            for name in names:  # a bad event log path fails here
                built.append(make_sink(name, settings))
            built.extend(results)
            with open_monitor(model, src, config, backend, precision, sinks=built) as monitor:
                stops.attach(monitor)
                return monitor.run()
        finally:
            src.close()  # when the sinks failed to build (open_monitor closes it otherwise)
            for sink in built:  # no-ops after a run; closes the log if the run never started
                with contextlib.suppress(Exception):
                    sink.close(None)
