"""``--web [HOST:]PORT``, ``--web-token`` and ``--web-allow-host`` for ``mrm-edge monitor``
(the central station)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from mrm_edge.cli.options import F, option_group
from mrm_edge.runtime.web.config import TOKEN_ENV

if TYPE_CHECKING:
    from mrm_edge.runtime.web.config import WebConfig


def web_options() -> Callable[[F], F]:
    options = [
        click.option(
            "--web",
            metavar="[HOST:]PORT",
            default=None,
            help="Serve the central station (ECG strips, findings, alarms) in the browser "
            "at this address while the monitor runs; HOST defaults to 127.0.0.1, port 0 "
            "picks a free one. Needs the 'web' extra.",
        ),
        click.option(
            "--web-token",
            envvar=TOKEN_ENV,
            show_envvar=True,
            default=None,
            help="Access token the page and its socket require (needed to bind a "
            "non-loopback address). Never printed or logged.",
        ),
        click.option(
            "--web-allow-host",
            metavar="NAME[:PORT]",
            multiple=True,
            help="Also answer to this host name, e.g. a reverse proxy's (repeatable); pages "
            "at http(s)://NAME[:PORT] may then use the station. Requests naming any other "
            "host are refused (DNS rebinding).",
        ),
    ]
    return option_group(options)


def web_config(
    web: str | None, token: str | None, allow_hosts: tuple[str, ...] = ()
) -> WebConfig | None:
    """The parsed ``--web`` (None when not given); ValueError, one line, for a bad value, a
    malformed ``--web-allow-host`` or a non-loopback bind without a token."""
    if web is None:
        return None
    from mrm_edge.runtime.web.config import WebConfig, parse_bind

    host, port = parse_bind(web)
    config = WebConfig(host, port, token or None, tuple(allow_hosts))
    config.check()
    return config
