"""Where the central station serves and who may see it: ``--web [HOST:]PORT`` parsed, the
rule that a non-loopback bind needs an access token, and the extra host names
(``--web-allow-host``, a reverse proxy's) it answers to besides its bind address."""

from __future__ import annotations

from dataclasses import dataclass

from mrm_edge.runtime.sources.network import is_loopback

TOKEN_ENV = "MRM_EDGE_WEB_TOKEN"


def parse_bind(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` → (host, port); host defaults to 127.0.0.1. ValueError, one line."""
    host, sep, port_s = str(text).rpartition(":")
    if not sep:
        host, port_s = "127.0.0.1", str(text)
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(
            f"--web {text!r}: expected [HOST:]PORT, e.g. 8765 or 0.0.0.0:8765"
        ) from None
    if not 0 <= port <= 65535:
        raise ValueError(f"--web {text!r}: port must be 0..65535 (0: any free port)")
    return host, port


@dataclass(frozen=True)
class WebConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    allow_hosts: tuple[str, ...] = ()

    def check(self) -> None:
        """A non-loopback bind without a token, or a malformed extra host name, is refused
        (one line)."""
        from mrm_edge.runtime.web.access import split_host

        for name in self.allow_hosts:
            if split_host(name) is None:
                raise ValueError(
                    f"--web-allow-host {name!r}: expected a host name with an optional port, "
                    "e.g. station.example or station.example:8443 (no scheme, no path)"
                )
        if not is_loopback(self.host) and not self.token:
            raise ValueError(
                f"--web {self.host}:{self.port}: serving beyond this machine needs an access "
                f"token (--web-token TOKEN or {TOKEN_ENV}); or bind 127.0.0.1"
            )
