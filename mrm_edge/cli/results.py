"""The monitor's result-sink options (``--sink hl7:HOST:PORT``, ``--sink fhir:URL``, ...):
results to a hospital's systems through the durable outbox (docs/outbox.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def result_options() -> Callable[[F], F]:
    from mrm_edge.runtime.outbox.channels import channel_help

    def decorate(fn: F) -> F:
        for option in reversed(
            [
                click.option(
                    "--sink",
                    "sink_specs",
                    multiple=True,
                    metavar="KIND:TARGET",
                    help=f"Deliver results to a hospital system (repeatable): {channel_help()}. "
                    "Through the durable outbox: nothing is lost while a receiver is down.",
                ),
                click.option(
                    "--outbox",
                    "outbox_path",
                    type=click.Path(dir_okay=False, path_type=Path),
                    default=None,
                    help="The outbox file (default: outbox/outbox.sqlite in the user cache); "
                    "`mrm-edge outbox` shows and manages it.",
                ),
                click.option(
                    "--report-per",
                    type=click.Choice(["record", "alarm"]),
                    default="record",
                    show_default=True,
                    help="One message per classified record (a stream's windows, at its "
                    "end) or per alarm switching on or off (live streams).",
                ),
                click.option(
                    "--sink-ca",
                    type=click.Path(exists=True, dir_okay=False, path_type=Path),
                    default=None,
                    help="CA bundle that verifies TLS receivers (default: the system's).",
                ),
            ]
        ):
            fn = option(fn)
        return fn

    return decorate


def build_result_sinks(
    model_dir: Path,
    sink_specs: tuple[str, ...],
    outbox_path: Path | None,
    report_per: str,
    sink_ca: Path | None,
) -> list[Any]:
    """The result sinks the options name (none without ``--sink``), their labels coded by
    the model card's table (its dataset's, then its own ``codes``)."""
    if not sink_specs:
        return []
    from mrm_edge.card import ModelCard
    from mrm_edge.runtime.outbox.channels import ChannelOptions
    from mrm_edge.runtime.outbox.codes import CodeTable
    from mrm_edge.runtime.sinks.outbox import result_sinks

    card = ModelCard.load(model_dir)
    codes = CodeTable(card.data.get("dataset"), card.codes)
    options = ChannelOptions(ca_file=sink_ca, codes=codes)
    return result_sinks(sink_specs, outbox_path, report_per, options)
