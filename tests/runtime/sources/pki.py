"""Certificates for the TLS tests, made at test time with the ``openssl`` command in a
temporary directory (never committed): a CA and another CA, a server certificate for
127.0.0.1/localhost, device certificates, an expired one (via ``openssl ca`` with dates in
the past), and broken files. EC P-256 keys: quick to make."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mrm_edge.runtime.sources.tls import TlsFiles

OPENSSL = shutil.which("openssl")

_CA_CNF = """\
[ca]
default_ca = ca_default
[ca_default]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/newcerts
serial = {dir}/serial
default_md = sha256
policy = policy_any
x509_extensions = device_ext
[policy_any]
commonName = supplied
organizationName = optional
[device_ext]
basicConstraints = CA:FALSE
extendedKeyUsage = clientAuth
"""


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Path
    other_ca: Path
    server: TlsFiles  # signed by ca; SAN 127.0.0.1, localhost; verified against ca
    devices: dict[str, TlsFiles]  # name -> files (subject CN=name,O=Ward 3), signed by ca
    rogue: TlsFiles  # a device signed by other_ca
    expired: TlsFiles  # a device signed by ca, valid 2020-01-01..2020-02-01
    not_a_cert: Path

    def subject(self, name: str) -> str:
        return f"CN={name},O=Ward 3"

    def server_files(self) -> TlsFiles:
        """The monitor's files: its certificate and key, and the CA devices chain to."""
        return TlsFiles(self.server.cert, self.server.key, self.ca)


def _run(*args: str | Path, cwd: Path) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *map(str, args)], cwd=cwd, check=True, capture_output=True)


def _key_and_csr(d: Path, name: str, subject: str) -> tuple[Path, Path]:
    key, csr = d / f"{name}.key", d / f"{name}.csr"
    _run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", csr, "-subj", subject, cwd=d)  # fmt: skip
    return key, csr


def _ca(d: Path, name: str, subject: str) -> tuple[Path, Path]:
    key, pem = d / f"{name}.key", d / f"{name}.pem"
    _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", pem, "-subj", subject, "-days", "3",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)  # fmt: skip
    return pem, key


def _leaf(
    d: Path, name: str, subject: str, ca: tuple[Path, Path], ext: str, ca_pem: Path
) -> TlsFiles:
    key, csr = _key_and_csr(d, name, subject)
    extfile = d / f"{name}.ext"
    extfile.write_text(ext)
    pem = d / f"{name}.pem"
    _run("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
         "-out", pem, "-days", "2", "-extfile", extfile, cwd=d)  # fmt: skip
    return TlsFiles(pem, key, ca_pem)


def make_pki(d: Path, devices: tuple[str, ...] = ("device-a", "device-b")) -> Pki:
    ca = _ca(d, "ca", "/O=Ward 3/CN=Test Ward CA")
    other = _ca(d, "other-ca", "/O=Elsewhere/CN=Other CA")
    server_ext = "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    server_ext += "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    device_ext = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"
    # The server verifies devices against ca; each device verifies the server against ca.
    server = _leaf(d, "server", "/O=Ward 3/CN=monitor", ca, server_ext, ca[0])
    devs = {n: _leaf(d, n, f"/O=Ward 3/CN={n}", ca, device_ext, ca[0]) for n in devices}
    rogue = _leaf(d, "rogue", "/O=Ward 3/CN=device-a", other, device_ext, ca[0])
    # Expired: `openssl ca` takes explicit dates in the past (x509 -req cannot, in 3.0).
    (d / "newcerts").mkdir()
    (d / "index.txt").write_text("")
    (d / "serial").write_text("1000\n")
    (d / "ca.cnf").write_text(_CA_CNF.format(dir=d))
    key, csr = _key_and_csr(d, "expired", "/O=Ward 3/CN=device-old")
    _run("ca", "-config", d / "ca.cnf", "-batch", "-notext", "-in", csr, "-out",
         d / "expired.pem", "-cert", ca[0], "-keyfile", ca[1],
         "-startdate", "20200101000000Z", "-enddate", "20200201000000Z", cwd=d)  # fmt: skip
    expired = TlsFiles(d / "expired.pem", key, ca[0])
    junk = d / "not-a-cert.pem"
    junk.write_text("this is not a certificate\n")
    return Pki(d, ca[0], other[0], server, devs, rogue, expired, junk)


def device_context(ca: Path, files: TlsFiles | None = None) -> ssl.SSLContext:
    """A device's context built directly (not through tls.client_context, which refuses
    our own bad files at start): how a misconfigured or rogue device really connects."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(ca))
    if files is not None:
        ctx.load_cert_chain(files.cert, files.key)
    return ctx


def tls_connect(port: int, ctx: ssl.SSLContext, timeout: float = 5.0) -> ssl.SSLSocket:
    """A TLS connection to the monitor on 127.0.0.1 (hostname checked: the SAN's IP)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def openssl_subject(cert: Path) -> str:
    """The subject as ``openssl x509 -subject -nameopt RFC2253`` prints it."""
    assert OPENSSL is not None
    out = subprocess.run(
        [OPENSSL, "x509", "-in", str(cert), "-noout", "-subject", "-nameopt", "RFC2253"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return out.strip().removeprefix("subject=")
