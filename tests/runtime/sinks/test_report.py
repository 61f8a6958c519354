"""ConsoleReport: the lines ``mrm-edge monitor`` prints at the start of a run (the model and
what a window costs, the backend and why) and each notice."""

from __future__ import annotations

import dataclasses
import io

from mrm_edge.runtime.sinks.report import ConsoleReport
from rich.console import Console

from tests.runtime.sinks.records import info


def opened(**fields: object) -> str:
    out = io.StringIO()
    ConsoleReport(Console(file=out, width=200)).open(dataclasses.replace(info(), **fields))
    return out.getvalue()


def test_the_start_line_states_the_cost_per_window() -> None:
    text = opened(gflop_per_window=0.41161)
    assert text.splitlines()[0] == "model tiny: 0.41 GFLOP per window"
    assert "backend onnxruntime on cpu, int8" in text and "why: because" in text


def test_an_older_export_says_how_to_record_the_cost() -> None:
    first = opened().splitlines()[0]
    assert first.startswith("model tiny: cost per window not recorded")
    assert "--restamp" in first


def test_a_model_name_is_printed_as_written_never_as_markup() -> None:
    # The card's name comes from a model directory: markup in it is text, not styling.
    assert opened(model="[red]evil[/red]").splitlines()[0].startswith("model [red]evil[/red]:")
