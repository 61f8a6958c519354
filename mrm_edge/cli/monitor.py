"""``mrm-edge monitor``: live multi-patient classification, window by window."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import click

from mrm_edge.cli.common import console, model_path
from mrm_edge.cli.network import network_options, network_settings
from mrm_edge.cli.options import card_tuning_option, model_option, runtime_options, user_errors
from mrm_edge.cli.results import build_result_sinks, result_options
from mrm_edge.runtime.sources.registry import source_help
from mrm_edge.runtime.web.config import TOKEN_ENV


@click.command()
@model_option(must_exist=False)
@click.option(
    "--source",
    default="synthetic",
    show_default=True,
    help=source_help(),  # the registered kinds: synthetic | wfdb:PATH[,PATH...] | ...
)
@click.option(
    "--streams",
    type=click.IntRange(1),
    default=4,
    show_default=True,
    help="Synthetic patients (synthetic source only).",
)
@click.option(
    "--hop",
    "hop_s",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Seconds between window starts.",
)
@runtime_options()
@click.option(
    "--speed",
    default="realtime",
    show_default=True,
    help="Replay pace for synthetic/wfdb sources: realtime, max or a factor (4x); "
    "tcp: scales --rate-ceiling (max: no ceiling).",
)
@click.option("--loop", is_flag=True, help="Replay wfdb records in a loop.")
@click.option(
    "--duration",
    "duration_s",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many seconds (default: until the source ends, or Ctrl-C).",
)
@click.option(
    "--events",
    "events_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSON Lines event log (one line per window, alarms, summary). An existing file is "
    "refused (see --events-append). A full disk does not stop the run: the lost records "
    "are counted and writing resumes when space returns.",
)
@click.option(
    "--events-append",
    is_flag=True,
    help="Add this run's lines to an existing --events file instead of refusing it.",
)
@click.option("--no-ui", is_flag=True, help="No live terminal view (summary only).")
@click.option(
    "--rail-mv",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="The input device's saturation rail in mV: a lead at the rail is flagged. "
    "Off by default (clean PTB-XL records reach 8-11 mV; rails differ by device).",
)
@click.option(
    "--stall-timeout",
    "stall_timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="tcp/stdin: a connected device silent this long (s) has its stream marked "
    "stalled; data that resumes opens a new segment of the stream.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@card_tuning_option()
@network_options()  # tcp: --tls-cert/--tls-key/--tls-client-ca, --allow-list, limits
@result_options()  # --sink hl7:HOST:PORT / fhir:URL ..., --outbox, --report-per, --sink-ca
@click.option(
    "--web",
    metavar="[HOST:]PORT",
    default=None,
    help="Serve the central station (ECG strips, findings, alarms) in the browser "
    "at this address while the monitor runs; HOST defaults to 127.0.0.1, port 0 "
    "picks a free one. Needs the 'web' extra.",
)
@click.option(
    "--web-token",
    envvar=TOKEN_ENV,
    show_envvar=True,
    default=None,
    help="Access token the page and its socket require (needed to bind a "
    "non-loopback address). Never printed or logged.",
)
@click.option(
    "--web-allow-host",
    metavar="NAME[:PORT]",
    multiple=True,
    help="Also answer to this host name, e.g. a reverse proxy's (repeatable); pages "
    "at http(s)://NAME[:PORT] may then use the station. Requests naming any other "
    "host are refused (DNS rebinding).",
)
@user_errors
def monitor(
    model_dir: str | None,
    source: str,
    streams: int,
    hop_s: float,
    backend: str,
    precision: str | None,
    max_batch: int,
    max_delay_ms: float,
    speed: str,
    loop: bool,
    duration_s: float | None,
    events_path: str | None,
    events_append: bool,
    no_ui: bool,
    rail_mv: float | None,
    stall_timeout_s: float,
    seed: int,
    accept_card_tuning: bool,
    web: str | None,
    web_token: str | None,
    web_allow_host: tuple[str, ...],
    sink_specs: tuple[str, ...],
    outbox_path: Path | None,
    report_per: str,
    sink_ca: Path | None,
    **network: Any,
) -> None:
    """Classify live multi-patient 12-lead ECG, window by window.

    With no arguments: a few synthetic patients through the shipped model on the best
    backend here. Ctrl-C ends cleanly with the summary.
    """
    from mrm_edge.runtime.app import run_monitor
    from mrm_edge.runtime.config import MonitorConfig
    from mrm_edge.runtime.sources.base import parse_speed
    from mrm_edge.runtime.sources.registry import SourceOptions, make_source
    from mrm_edge.runtime.stream.quality import QualityConfig

    pace = parse_speed(speed)
    # A bad --web fails here, before the model loads.
    station = _web_config(web, web_token, web_allow_host)
    net = network_settings(source, **network)
    results = build_result_sinks(
        model_path(model_dir), sink_specs, outbox_path, report_per, sink_ca
    )
    # run_monitor's own handlers stop the run and put these back when it returns: then the
    # summary is written and the process only exits, and a late SIGINT/SIGTERM must not turn
    # that clean end into a kill (rc -2 / -15). SIG_IGN, not a Python handler: the interpreter
    # resets those to the default as it finalizes, which takes a while after ONNX Runtime,
    # OpenVINO or torch. (The monitor starts no child process that would inherit it.)
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
    summary = run_monitor(
        model_path(model_dir),
        lambda model: make_source(
            source,
            SourceOptions(
                streams=streams,
                speed=pace,
                loop=loop,
                seed=seed,
                stall_timeout_s=stall_timeout_s,
                min_seconds=model.card.window_seconds,  # wfdb: refuse records < one window
                network=net,
            ),
        ),
        MonitorConfig(
            hop_s=hop_s,
            max_batch=max_batch,
            max_delay_ms=max_delay_ms,
            duration_s=duration_s,
            quality=QualityConfig(saturation_mv=rail_mv),
        ),
        backend=backend,
        precision=precision,
        events_path=events_path,
        events_append=events_append,
        ui=not no_ui,
        console=console(),
        results=results,
        web=station,
        accept_card_tuning=accept_card_tuning,
    )
    if not summary.ok:
        sys.exit(1)


def _web_config(web: str | None, token: str | None, allow_hosts: tuple[str, ...]) -> Any:
    """The parsed ``--web`` (None when not given); ValueError, one line, for a bad value, a
    malformed ``--web-allow-host`` or a non-loopback bind without a token."""
    if web is None:
        return None
    from mrm_edge.runtime.web.config import WebConfig, parse_bind

    host, port = parse_bind(web)
    config = WebConfig(host, port, token or None, tuple(allow_hosts))
    config.check()
    return config
