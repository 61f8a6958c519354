"""Sinks by name: ``make_sink("jsonl", settings)``. Adding a sink is one new module with its
``Sink`` subclass plus one ``register_sink`` line (here for the built-in ones: report,
jsonl, live, web; anywhere for a caller's own, e.g. a test). The factories import their
module on first use, so a run without the live view never imports rich's live display."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mrm_edge.runtime.sinks.base import Sink

if TYPE_CHECKING:
    from mrm_edge.runtime.web.config import WebConfig
    from rich.console import Console


@dataclass(frozen=True)
class SinkSettings:
    """What the composition root knows that a sink may need; each factory takes its part."""

    console: Console | None = None
    """Where terminal sinks draw (None: a new rich Console each)."""
    events_path: Path | None = None
    """The event log's path (the jsonl sink)."""
    events_append: bool = False
    """Add to an existing event log instead of refusing it (``--events-append``)."""
    web: WebConfig | None = None
    """Where the central station serves (the web sink)."""


SinkFactory = Callable[[SinkSettings], Sink]
_FACTORIES: dict[str, SinkFactory] = {}


def register_sink(name: str, factory: SinkFactory) -> None:
    """Make ``name`` buildable by ``make_sink``; a second registration of a name replaces
    the first (a test may stand in for a built-in)."""
    _FACTORIES[name] = factory


def make_sink(name: str, settings: SinkSettings) -> Sink:
    """The sink ``name`` with ``settings``; ValueError (one line) for an unknown name."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ValueError(f"unknown sink {name!r}, expected one of {', '.join(_FACTORIES)}")
    return factory(settings)


def _report(settings: SinkSettings) -> Sink:
    from mrm_edge.runtime.sinks.report import ConsoleReport

    return ConsoleReport(settings.console)


def _jsonl(settings: SinkSettings) -> Sink:
    from mrm_edge.runtime.sinks.jsonl import JsonlSink

    if settings.events_path is None:
        raise ValueError("the jsonl sink needs an event log path (--events)")
    # Opened now: a bad or existing path fails before the run.
    return JsonlSink(settings.events_path, append=settings.events_append)


def _live(settings: SinkSettings) -> Sink:
    from mrm_edge.runtime.sinks.live import LiveView

    return LiveView(settings.console)


def _web(settings: SinkSettings) -> Sink:
    from mrm_edge.runtime.sinks.web import WebSink

    if settings.web is None:
        raise ValueError("the web sink needs an address (--web [HOST:]PORT)")
    return WebSink(settings.web, settings.console)  # binds now: a busy port fails early


register_sink("report", _report)
register_sink("jsonl", _jsonl)
register_sink("live", _live)
register_sink("web", _web)
