"""``mrm-edge send``: stream recordings as live devices to a monitor (TCP) or to stdout.

The sending, reporting and exit status are :func:`mrm_edge.runtime.sender.run`'s.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from mrm_edge.runtime.sources.framing import DEFAULT_INT16_GAIN


def _speed(ctx: click.Context, param: click.Parameter, text: str) -> float | None:
    from mrm_edge.runtime.sources.base import parse_speed

    try:
        return parse_speed(text)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@click.command()
@click.argument("records", nargs=-1, required=True, metavar="RECORD...")
@click.option("--port", type=int, default=None, help="TCP port of the monitor (tcp source).")
@click.option("--stdout", is_flag=True, help="Write frames to standard output.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Monitor host.")
@click.option(
    "--speed",
    default="realtime",
    show_default=True,
    callback=_speed,
    metavar="SPEED",
    help="realtime, max, or a factor like 4x.",
)
@click.option(
    "--chunk-seconds", type=float, default=0.2, show_default=True, help="Signal per DATA frame."
)
@click.option(
    "--format",
    "sample_format",
    type=click.Choice(["float32", "int16"]),
    default="float32",
    show_default=True,
    help="Samples on the wire.",
)
@click.option(
    "--gain",
    type=float,
    default=DEFAULT_INT16_GAIN,
    show_default=True,
    help="int16 counts per mV (1000: 1 uV steps).",
)
@click.option(
    "--stream-id",
    "stream_ids",
    multiple=True,
    metavar="ID",
    help="Stream id per record, in order (default: record names).",
)
@click.option(
    "--prefer-rate",
    type=int,
    default=None,
    metavar="HZ",
    help="Of PTB-XL _lr/_hr twins, send the HZ one (default: higher).",
)
@click.option("--loop", is_flag=True, help="Replay each record forever.")
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False),
    help="Mutual TLS: this device's certificate (PEM).",
)
@click.option(
    "--tls-key", type=click.Path(dir_okay=False), help="Mutual TLS: its private key (PEM)."
)
@click.option(
    "--tls-ca",
    type=click.Path(dir_okay=False),
    help="Mutual TLS: the CA the monitor's certificate must chain to.",
)
@click.option(
    "--tls-server-name",
    metavar="NAME",
    help="Name or IP checked in the monitor's certificate (default: --host).",
)
@click.option("-q", "--quiet", is_flag=True, help="Only report errors.")
def send(
    records: tuple[str, ...], port: int | None, stdout: bool, stream_ids: tuple[str, ...], **kw: Any
) -> None:
    """Stream recordings as live devices to a monitor (TCP) or to stdout.

    One connection per record (RECORD: .hea, record stem, .mat, or a directory of them);
    the framing is documented in docs/devices.md.
    """
    from mrm_edge.runtime.sender import run

    if (port is None) == (not stdout):
        raise click.UsageError("exactly one of --port and --stdout is required")
    status = run(list(records), port=port, stdout=stdout, stream_ids=list(stream_ids) or None, **kw)
    sys.exit(status)
