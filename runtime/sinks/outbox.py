"""Results out to a hospital's systems (HL7 v2, FHIR) through the durable outbox: this sink
composes one message per classified record (a stream segment's windows, at its end) or per
alarm switching on or off (``per``), stores it in the outbox and leaves the sending to its
channel's courier, so a slow or absent receiver never holds up classification. A full
outbox is a loud system notice (terminal, station, event log) for every message it refuses,
never a silent drop. docs/outbox.md."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mrm_edge.runtime.outbox.channels import ChannelOptions, make_channel
from mrm_edge.runtime.outbox.courier import Channel, Courier
from mrm_edge.runtime.outbox.report import (
    ModelIdentity,
    ResultReport,
    alarm_report,
    now,
    record_report,
)
from mrm_edge.runtime.outbox.store import Outbox
from mrm_edge.runtime.sinks.base import RunInfo, Sink, StreamEvent
from mrm_edge.runtime.user_cache import user_cache_dir

if TYPE_CHECKING:
    from mrm_edge.runtime.postprocess import AlarmEvent, WindowResult
    from mrm_edge.runtime.sinks.summary import Summary

#: How long a stopping monitor keeps delivering what is pending (the rest stays stored).
DRAIN_S = 5.0
#: Where the outbox lives when ``--outbox`` is not given.
DEFAULT_OUTBOX = "outbox/outbox.sqlite"


def result_sinks(
    specs: Sequence[str],
    outbox_path: Path | None,
    per: Literal["record", "alarm"],
    options: ChannelOptions,
) -> list[OutboxSink]:
    """One sink per ``--sink`` spec, all through one outbox file (default: in the user
    cache); ValueError or OutboxError (one line) for a bad spec or an unusable file."""
    if not specs:
        return []
    outbox = Outbox(outbox_path or user_cache_dir(DEFAULT_OUTBOX))
    return [OutboxSink(outbox, make_channel(spec, options), per) for spec in specs]


class OutboxSink(Sink):
    def __init__(
        self, outbox: Outbox, channel: Channel, per: Literal["record", "alarm"] = "record"
    ) -> None:
        self.outbox = outbox
        self.channel = channel
        self.per = per
        self.lost = 0
        self._info: RunInfo | None = None
        self._courier: Courier | None = None
        self._windows: dict[tuple[str, int], list[WindowResult]] = {}
        self._began: dict[tuple[str, int], datetime] = {}

    def open(self, info: RunInfo) -> None:
        self._info = info
        self._model = ModelIdentity(info.model, info.model_sha256, info.backend)
        self._courier = Courier(self.outbox, self.channel, self._notify)
        self._courier.start()

    def _notify(self, line: str) -> None:
        if self._info is not None and self._info.notify is not None:
            self._info.notify(line)

    def _subject(self, stream_id: str) -> str | None:
        origin = self._info.origin(stream_id) if self._info and self._info.origin else None
        return origin.subject if origin else None

    def stream(self, event: StreamEvent) -> None:
        key = (event.stream_id, event.segment)
        if event.kind == "start":
            origin = self._info.origin(event.stream_id) if self._info.origin else None
            self._began[key] = origin.started_at if origin and origin.started_at else now()
            self._windows[key] = []
        elif event.kind in ("end", "error") and self.per == "record":
            windows = self._windows.pop(key, [])
            report = record_report(
                windows, dict(self._info.thresholds), self._info.findings, self._model,
                self._subject(event.stream_id), self._began.pop(key, now()),
            )  # fmt: skip
            if report is not None:
                self._store(report)

    def window(self, result: WindowResult) -> None:
        if self.per == "record":
            self._windows.setdefault((result.stream_id, result.segment), []).append(result)

    def alarm(self, event: AlarmEvent) -> None:
        if self.per == "alarm":
            began = self._began.get((event.stream_id, event.segment), now())
            subject = self._subject(event.stream_id)
            self._store(alarm_report(event, self._info.window_s, self._model, subject, began))

    def _store(self, report: ResultReport) -> None:
        body = self.channel.compose(report)
        if self.outbox.put(self.channel.name, report.message_id, report.stream_id, body):
            self._courier.wake()
            return
        self.lost += 1
        self._notify(
            f"OUTBOX FULL ({self.outbox.path}): the {report.kind} result of stream "
            f"{report.stream_id} for {self.channel.name} was NOT stored ({self.lost} lost "
            "this run); deliver or discard pending messages with `mrm-edge outbox`"
        )

    def close(self, summary: Summary | None) -> None:
        courier, self._courier = self._courier, None
        if courier is not None:
            courier.stop(DRAIN_S)
