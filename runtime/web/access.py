"""Who may talk to the central station: the checks every request and socket passes before
any route sees it, and the headers every response carries.

A browser is the hostile party here: any page it has open (another site, another port of
this machine, a DNS-rebound name) can make it send requests to the station. In order: Host
(421), Origin (403), Sec-Fetch-Site (403), the token (401, non-loopback binds), no bodies
(413), and ``X-MRM-Station: 1`` on state changes (403); why each and what it admits:
docs/threat-model.md (Browsers).
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from mrm_edge.runtime.sources.network import is_loopback
from mrm_edge.runtime.web.config import WebConfig

ACTION_HEADER = "x-mrm-station"
COOKIE = "mrm_edge_token"  # set by the page when opened with ?token= (SameSite=Strict)
MAX_BODY = 1024
_SAFE_METHODS = ("GET", "HEAD")
_WILDCARD = ("0.0.0.0", "::")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),  # live data, and the page is a few kB
]


def split_host(value: str) -> tuple[str, str] | None:
    """``name[:port]`` / ``[v6]:port`` → (name lowercased, port or ""); None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, sep, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else rest
        if not sep or (rest and not rest.startswith(":")):
            return None
    elif value.count(":") == 1:
        name, _, port = value.partition(":")
    else:
        name, port = value, ""
    if not name or (port and not (port.isascii() and port.isdigit() and len(port) <= 5)):
        return None
    if any(c in name for c in "/@?#\\ ") or not name.isascii() or not name.isprintable():
        return None
    return name, port


def _small(length: str) -> bool:
    return length.isascii() and length.isdigit() and len(length) < 9 and int(length) <= MAX_BODY


def _ip(name: str) -> Any:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


class Access:
    """The checks above for one station (``config``); ``refusal(scope)`` says why not."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.bind = config.host.lower()
        self.extra = {h.lower() for h in config.allow_hosts}
        self.extra_names = {p[0] for p in map(split_host, self.extra) if p is not None}

    def host_allowed(self, value: str) -> bool:
        parsed = split_host(value)
        if parsed is None:
            return False
        name, _ = parsed
        if name == self.bind or value.lower() in self.extra or name in self.extra_names:
            return True
        ip = _ip(name)
        if is_loopback(self.bind):
            return name == "localhost" or (ip is not None and ip.is_loopback)
        if self.bind in _WILDCARD:  # an IP literal cannot be rebound to this machine
            return name == "localhost" or ip is not None
        return False

    def origin_allowed(self, origin: str, host: str) -> bool:
        scheme, sep, netloc = origin.strip().lower().partition("://")
        if not sep or scheme not in ("http", "https") or split_host(netloc) is None:
            return False  # "null" (a sandboxed or file page) included
        return netloc == host.strip().lower() or netloc in self.extra

    def has_token(self, scope: dict[str, Any]) -> bool:
        """Whether ``scope`` carries the token (``?token=``, the cookie or ``Authorization:
        Bearer``), compared in constant time; True when the station has none."""
        token = self.config.token
        if not token:
            return True
        from starlette.requests import HTTPConnection

        conn = HTTPConnection(scope)
        given = conn.query_params.get("token") or conn.cookies.get(COOKIE) or ""
        auth = conn.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = given or auth[7:]
        return hmac.compare_digest(given.encode(), token.encode())

    def refusal(self, scope: dict[str, Any]) -> tuple[int, str] | None:
        """(status, one-line reason) to refuse the request or socket ``scope`` with, or
        None to serve it."""
        headers: dict[str, list[str]] = {}
        for k, v in scope.get("headers", ()):
            headers.setdefault(k.decode("latin-1").lower(), []).append(v.decode("latin-1"))
        one = {k: v[0] for k, v in headers.items() if len(v) == 1}
        host = one.get("host")
        if host is None or not self.host_allowed(host):
            return 421, (
                "this central station answers only to its own address "
                "(a reverse proxy's name needs --web-allow-host NAME)"
            )
        if "origin" in headers and not self.origin_allowed(one.get("origin", ""), host):
            return 403, "requests from pages of another origin are refused"
        sites = headers.get("sec-fetch-site", ["same-origin"])
        if scope.get("path") != "/" and any(s not in ("same-origin", "none") for s in sites):
            return 403, "cross-site requests are refused"
        if not self.has_token(scope):
            return 401, "this central station needs its access token"
        if scope["type"] != "http":
            return None
        lengths = headers.get("content-length", ["0"])
        if "transfer-encoding" in headers or not all(_small(n) for n in lengths):
            return 413, f"request bodies over {MAX_BODY} bytes are refused"
        if scope.get("method") not in _SAFE_METHODS and one.get(ACTION_HEADER) != "1":
            return 403, "a state-changing request needs the station page's X-MRM-Station header"
        return None


async def refuse(scope: dict[str, Any], send: Any, status: int, reason: str) -> None:
    """Answer ``scope`` with ``status`` and a one-line plain-text reason; a socket is
    refused at its handshake (or closed with 1008 where the server cannot say why)."""
    body = f"{status}: {reason}\n".encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
    }
    if scope["type"] == "http":
        await send(start)
        await send({"type": "http.response.body", "body": body})
    elif "websocket.http.response" in scope.get("extensions", {}):
        await send({**start, "type": "websocket.http.response.start"})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})
