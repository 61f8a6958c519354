"""``mrm-edge monitor``'s options for devices on a network (the tcp source): mutual TLS,
the allow-list, the device limits and the loud plain-text opt-out. Defined here as one
group so that monitor.py takes them in one decorator; ``network_settings`` turns them
into the source's :class:`~mrm_edge.runtime.sources.network.NetworkOptions`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from mrm_edge.cli.options import F, option_group
from mrm_edge.runtime.sources.limits import DeviceLimits
from mrm_edge.runtime.sources.network import INSECURE_FLAG, NetworkOptions

_DEFAULTS = DeviceLimits()
_PEM = click.Path(dir_okay=False, path_type=Path)


def network_options() -> Callable[[F], F]:
    """The tcp source's options (each documented with its default in ``--help``)."""
    options = [
        click.option("--tls-cert", type=_PEM, help="tcp: the monitor's TLS certificate (PEM)."),
        click.option("--tls-key", type=_PEM, help="tcp: its private key (PEM, unencrypted)."),
        click.option(
            "--tls-client-ca",
            type=_PEM,
            help="tcp: mutual TLS, the CA every device certificate must chain to (PEM).",
        ),
        click.option(
            "--allow-list",
            type=_PEM,
            help="tcp: JSON mapping device identities (certificate subjects) to the stream "
            "ids they may open.",
        ),
        click.option(
            "--max-connections",
            type=click.IntRange(1),
            default=_DEFAULTS.max_connections,
            show_default=True,
            help="tcp: open connections at most; one more is refused and logged.",
        ),
        click.option(
            "--hello-timeout",
            "hello_timeout_s",
            type=click.FloatRange(min=0, min_open=True),
            default=_DEFAULTS.hello_timeout_s,
            show_default=True,
            help="tcp: seconds from connect to a complete TLS handshake and HELLO.",
        ),
        click.option(
            "--rate-ceiling",
            type=click.FloatRange(min=0),
            default=_DEFAULTS.rate_ceiling,
            show_default=True,
            help="tcp: a device sending more than this many x real time (its declared rate) "
            f"after a {_DEFAULTS.rate_burst_s:g} s burst is throttled, and cut after "
            f"{_DEFAULTS.rate_cut_s:g} s of it; scaled by --speed, none at max; 0: off.",
        ),
        click.option(
            INSECURE_FLAG,
            "insecure_plaintext",
            is_flag=True,
            help="tcp: allow plain text on a non-loopback address (isolated test networks "
            "only; announced and logged).",
        ),
    ]
    return option_group(options)


def network_settings(
    source: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_client_ca: Path | None,
    allow_list: Path | None,
    max_connections: int,
    hello_timeout_s: float,
    rate_ceiling: float,
    insecure_plaintext: bool,
) -> NetworkOptions:
    """The options as the tcp source takes them; the opt-out is announced on stderr here.

    A TLS, allow-list or opt-out option with another source is refused: silently ignoring
    ``--tls-cert`` would let a user believe a stream is protected when it is not."""
    given = {
        "--tls-cert": tls_cert,
        "--tls-key": tls_key,
        "--tls-client-ca": tls_client_ca,
        "--allow-list": allow_list,
        INSECURE_FLAG: insecure_plaintext or None,
    }
    stray = [name for name, value in given.items() if value is not None]
    if stray and not (source or "").startswith("tcp:"):
        raise click.UsageError(
            f"{', '.join(stray)} applies to the tcp source only (--source is "
            f"{source or 'the default synthetic patients'!r})"
        )
    if insecure_plaintext:
        click.echo(
            f"mrm-edge monitor: WARNING {INSECURE_FLAG}: a non-loopback tcp source listens in "
            "plain text, without authentication (isolated test networks only)",
            err=True,
        )
    limits = DeviceLimits(
        max_connections=max_connections,
        hello_timeout_s=hello_timeout_s,
        rate_ceiling=rate_ceiling or None,
    )
    return NetworkOptions(
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=tls_client_ca,
        allow_list=allow_list,
        limits=limits,
        insecure_plaintext=insecure_plaintext,
    )
