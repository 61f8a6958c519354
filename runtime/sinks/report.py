"""``ConsoleReport``: what ``mrm-edge monitor`` prints around a run: at the start which
backend runs, why, where it falls back to and which model files were refused; each system
notice as one ``notice: ...`` line; at the end the summary. Opened first and closed last
among a run's sinks, so its lines come before the live view starts and after it stops."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mrm_edge.runtime.sinks.base import RunInfo, Sink

if TYPE_CHECKING:
    from mrm_edge.runtime.sinks.summary import Summary
    from rich.console import Console


class ConsoleReport(Sink):
    """The module docstring's report, on ``console`` (default: a new rich Console)."""

    def __init__(self, console: Console | None = None) -> None:
        if console is None:
            from rich.console import Console

            console = Console()
        self.console = console

    def open(self, info: RunInfo) -> None:
        print_ = self.console.print
        print_(f"model {info.model}: {cost_text(info.gflop_per_window)}", markup=False)
        print_(f"[bold]backend[/bold] {info.backend}")
        print_(f"  why: {info.backend_reason}", markup=False)
        fallbacks = info.knobs.get("fallbacks") or []
        if fallbacks:
            print_(f"  fallback: {' → '.join(fallbacks)}", markup=False)
        for name, why in info.refused.items():
            print_(f"  refused {name}: {why}", markup=False)
        for line in info.knobs.get("card_tuning") or ():  # under --accept-card-tuning only
            print_(f"  {line}", markup=False)

    def notice(self, text: str) -> None:
        self.console.print(f"notice: {text}", markup=False, highlight=False, soft_wrap=True)

    def close(self, summary: Summary | None) -> None:
        if summary is not None:  # once: the fanout closes each sink once, later closes get None
            self.console.print(summary.render())


def cost_text(gflop: float | None) -> str:
    """A model's cost per window as the start line states it."""
    if gflop is None:
        return "cost per window not recorded (`mrm-edge export --model DIR --restamp` adds it)"
    return f"{gflop:.2f} GFLOP per window"
