"""network.py: plain text only on loopback, refused before anything listens; the loud
opt-out for isolated test networks, announced as a ``source`` event; TLS options all or
none."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from mrm_edge.runtime.sources.network import NetworkOptions, is_loopback, parse_address
from mrm_edge.runtime.sources.registry import make_source
from mrm_edge.runtime.sources.tcp import TcpSource

from tests.netns import run_in_netns
from tests.runtime.sources.test_ownership import drain

REPO = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nothing_listens_on(port: int) -> bool:
    """True when a loopback bind of ``port`` succeeds: no server holds it (a wildcard
    listener on the port would make this bind fail too)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_plain_text_off_loopback_is_refused_before_listening(host: str) -> None:
    port = free_port()
    with pytest.raises(ValueError) as e:
        TcpSource(host, port)
    message = str(e.value)
    assert message.startswith(f"tcp {host}:{port}: refusing to listen in plain text")
    assert "--tls-cert, --tls-key and --tls-client-ca" in message
    assert "--insecure-plaintext-network" in message and "\n" not in message
    assert nothing_listens_on(port)


def test_the_registry_refuses_it_too_with_the_spec() -> None:
    port = free_port()
    with pytest.raises(ValueError, match=rf"^tcp 0\.0\.0\.0:{port}: refusing to listen"):
        make_source(f"tcp:0.0.0.0:{port}")
    assert nothing_listens_on(port)


_OPT_OUT_PROBE = """
import socket
from mrm_edge.runtime.sources.network import NetworkOptions
from mrm_edge.runtime.sources.registry import SourceOptions, make_source
from tests.runtime.sources.test_ownership import drain

net = NetworkOptions(insecure_plaintext=True)
with make_source("tcp:0.0.0.0:0", SourceOptions(speed=None, network=net)) as src:
    assert src.describe().startswith("tcp (INSECURE plain text): listening on 0.0.0.0:")
    with socket.create_connection(("127.0.0.1", src.port), timeout=5):
        pass
    [notice, *_] = drain(src)
    assert src.limits.rate_ceiling is None  # --speed max: no rate ceiling
assert notice.kind == "insecure"
assert notice.reason.startswith("INSECURE: plain text on a non-loopback address")
assert "--insecure-plaintext-network" in notice.reason
print("opt-out ok")
"""


def test_the_opt_out_listens_and_says_so_first() -> None:
    # The wildcard bind happens in a network namespace of its own (tests/netns.py).
    r = run_in_netns([sys.executable, "-c", _OPT_OUT_PROBE], cwd=REPO)
    assert r.returncode == 0 and r.stdout.strip() == "opt-out ok", r.stderr


def test_loopback_plain_text_says_nothing_extra() -> None:
    with TcpSource("127.0.0.1") as src:
        assert src.describe() == f"tcp: listening on 127.0.0.1:{src.port}"
        assert drain(src, 0.1) == []


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.3.4.5") and is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::")
    assert not is_loopback("no-such-host.invalid")
    assert parse_address("[::1]:9000") == ("::1", 9000)


def test_tls_options_are_all_or_none(tmp_path) -> None:
    with pytest.raises(ValueError, match="needs all of --tls-cert, --tls-key and --tls-client-ca"):
        NetworkOptions(tls_cert=tmp_path / "c.pem")
