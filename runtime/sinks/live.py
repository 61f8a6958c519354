"""The terminal dashboard: the run's vital signs and one row per stream (alarming rows
first). rich's ``Live`` redraws from its own thread at most ``REFRESH_HZ`` times a second,
reading a copy of the rows under a lock; the engine's threads only update the rows, so a
slow terminal never slows inference. ``--no-ui`` leaves this sink out."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mrm_edge.runtime.sinks.base import BackendSwitch, RunInfo, Sink, StreamEvent

if TYPE_CHECKING:
    from mrm_edge.runtime.postprocess import AlarmEvent, WindowResult
    from mrm_edge.runtime.sinks.summary import Summary
    from rich.console import Console


REFRESH_HZ = 4.0


@dataclass
class _Row:
    findings: str = "…"
    alarms: tuple[str, ...] = ()
    signal: str = "waiting for the first window"
    state: str = "live"


def findings_text(result: WindowResult, top: int = 2) -> str:
    """The alarm findings above threshold with their smoothed p ("MI 0.81  STTC 0.66"), or
    "no finding" with the top label (NORM above threshold is no finding, not an alarm)."""
    smoothed = result.smoothed or {}
    found = sorted(result.findings, key=lambda lab: -smoothed.get(lab, 0.0))[:top]
    if found:
        return "  ".join(f"{lab} {smoothed[lab]:.2f}" for lab in found)
    best = max(smoothed.items(), key=lambda kv: kv[1], default=None)
    return "no finding" + (f" ({best[0]} {best[1]:.2f})" if best else "")


class LiveView(Sink):
    """rich dashboard sink. ``console``: where to draw (default: a new rich Console);
    ``max_rows``: streams shown (alarming first), the rest summarised in one line."""

    delivery = "lossy"  # a display: behind, it may skip windows (never alarms or stream events)

    def __init__(self, console: Console | None = None, *, max_rows: int = 24) -> None:
        self.console = console
        self.max_rows = max_rows
        self._rows: dict[str, _Row] = {}
        self._info: RunInfo | None = None
        self._lock = threading.Lock()
        self._live: Any = None
        self._switched: BackendSwitch | None = None

    # ------------------------------------------------------------------ sink

    def open(self, info: RunInfo) -> None:
        from rich.live import Live

        self._info = info
        self._live = Live(
            console=self.console,
            get_renderable=self._render,
            refresh_per_second=REFRESH_HZ,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def window(self, result: WindowResult) -> None:
        with self._lock:
            row = self._rows.setdefault(result.stream_id, _Row())
            row.alarms = result.alarms
            if result.ok and result.smoothed is not None:
                row.findings = findings_text(result)
                row.signal = "ok"
            else:
                row.signal = f"rejected: {result.reason}"

    def alarm(self, event: AlarmEvent) -> None:
        with self._lock:
            row = self._rows.setdefault(event.stream_id, _Row())
            on = set(row.alarms)
            (on.add if event.state == "on" else on.discard)(event.label)
            row.alarms = tuple(sorted(on))

    def stream(self, event: StreamEvent) -> None:
        with self._lock:
            row = self._rows.setdefault(event.stream_id, _Row())
            if event.kind == "start":
                row.state = "live"
            elif event.kind == "end":
                row.state = f"ended ({event.detail})" if event.detail else "ended"
            elif event.kind == "resync":
                row.signal = event.detail
            else:
                row.state = "failed"
                row.signal = event.detail

    def backend_switch(self, event: BackendSwitch) -> None:
        with self._lock:
            self._switched = event

    def close(self, summary: Summary | None) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()  # joins rich's refresh thread and draws the last frame

    # ------------------------------------------------------------------ drawing

    def _render(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        info = self._info
        with self._lock:
            rows = {
                sid: _Row(r.findings, r.alarms, r.signal, r.state) for sid, r in self._rows.items()
            }
            switched = self._switched
        parts: list[Any] = []
        if switched is None:
            # No "why" here: the report sink printed it once, just above this view.
            parts.append(Text(f"{info.model} on {info.backend}", style="bold"))
        else:  # the fallback now running, and loudly why
            parts.append(Text(f"{info.model} on {switched.to_backend}", style="bold"))
            parts.append(
                Text(
                    f"switched from {switched.from_backend}: {switched.reason}",
                    style="bold yellow",
                )
            )
        if info.stats is not None:
            s = info.stats()

            def ms(v: float | None) -> str:
                return "–" if v is None else f"{v:.0f} ms"

            parts.append(
                Text(
                    f"{s.windows_per_s:.1f} windows/s · latency p50 {ms(s.latency_p50_ms)} "
                    f"p99 {ms(s.latency_p99_ms)} · queue {s.queue_depth} · dropped "
                    f"{s.dropped} · classified {s.classified} · rejected {s.rejected} · "
                    f"{s.streams_live}/{s.streams} streams live · {s.elapsed_s:.0f} s"
                )
            )
        table = Table(box=None, padding=(0, 1), header_style="bold")
        for col in ("stream", "findings (smoothed)", "alarm", "signal", "state"):
            table.add_column(col, overflow="ellipsis", no_wrap=True)
        order = sorted(rows, key=lambda sid: (not rows[sid].alarms, sid))
        for sid in order[: self.max_rows]:
            r = rows[sid]
            table.add_row(
                sid,
                r.findings,
                Text(", ".join(r.alarms), style="bold red") if r.alarms else Text("–"),
                Text(r.signal, style="green" if r.signal == "ok" else "yellow"),
                r.state,
            )
        parts.append(table)
        if len(order) > self.max_rows:
            parts.append(Text(f"… {len(order) - self.max_rows} more stream(s)", style="dim"))
        return Group(*parts)
