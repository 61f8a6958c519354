"""``mrm-edge send``: stream recordings as live devices to a monitor (TCP) or to stdout
(the sending: :func:`mrm_edge.runtime.sender.send_records`)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
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
@click.option(
    "--lsl",
    is_flag=True,
    help="Publish each record as a Lab Streaming Layer outlet (the lsl extra).",
)
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
    records: tuple[str, ...],
    port: int | None,
    stdout: bool,
    lsl: bool,
    host: str,
    speed: float | None,
    chunk_seconds: float,
    sample_format: str,
    gain: float,
    stream_ids: tuple[str, ...],
    prefer_rate: int | None,
    loop: bool,
    tls_cert: str | None,
    tls_key: str | None,
    tls_ca: str | None,
    tls_server_name: str | None,
    quiet: bool,
) -> None:
    """Stream recordings as live devices to a monitor (TCP), to stdout or as LSL outlets.

    One connection (or outlet) per record (RECORD: .hea, record stem, .mat, or a directory
    of them); the framing and the outlets are documented in docs/devices.md. Exit status:
    0 sent, 1 a device failed, 2 bad records or arguments, 130 interrupted.
    """
    from mrm_edge.data.errors import DataError
    from mrm_edge.runtime.sender import publish_records, send_records
    from mrm_edge.runtime.sources.tls import TlsFiles

    if [port is not None, stdout, lsl].count(True) != 1:
        raise click.UsageError("exactly one of --port, --stdout and --lsl is required")
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="mrm-edge send: %(message)s",
        stream=sys.stderr,  # stdout may be carrying the frames
    )
    try:
        tls = None
        if (tls_cert, tls_key, tls_ca) != (None, None, None):
            if tls_cert is None or tls_key is None or tls_ca is None:
                raise ValueError("mutual TLS needs all of --tls-cert, --tls-key and --tls-ca")
            tls = TlsFiles(Path(tls_cert), Path(tls_key), Path(tls_ca))
            if port is None:
                raise ValueError("--tls-* options need --port (TLS is for TCP connections)")
        if lsl and sample_format != "float32":
            raise ValueError("--format applies to MRME frames; LSL outlets carry float32 mV")
        if lsl:
            results = publish_records(
                records,
                speed=speed,
                chunk_seconds=chunk_seconds,
                stream_ids=list(stream_ids) or None,
                loop=loop,
                prefer_rate=prefer_rate,
            )
        else:
            results = send_records(
                records,
                host,
                None if stdout else port,
                speed=speed,
                chunk_seconds=chunk_seconds,
                sample_format=sample_format,
                gain=gain,
                stream_ids=list(stream_ids) or None,
                loop=loop,
                prefer_rate=prefer_rate,
                tls=tls,
                server_name=tls_server_name,
            )
    except (DataError, ValueError) as e:
        _say(f"error: {e}")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(_report(results, stdout, quiet))


def _report(results: list[Any], stdout: bool, quiet: bool) -> int:
    """One stderr line per device (plain lines, whatever logging does); the exit status."""
    if stdout and any(r.error for r in results):
        # The reader is gone: point stdout at /dev/null so the interpreter's final flush
        # does not print a BrokenPipeError traceback.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    failed = 0
    for r in results:
        if r.error:
            failed += 1
            _say(f"{r.stream_id} ({r.path.name}): {r.error}")
        elif not quiet:
            _say(f"{r.stream_id}: sent {r.samples} samples")
        if r.clipped:
            _say(f"{r.stream_id}: {r.clipped} int16 samples clipped (lower --gain)")
    return 1 if failed else 0


def _say(line: str) -> None:
    print(f"mrm-edge send: {line}", file=sys.stderr)  # stdout may be carrying the frames
