"""TLS for live devices, with the standard library's ``ssl`` only: the monitor's server
context (mutual TLS), the device's client context, the checks on our own certificate
files at start, a device's identity (its certificate's subject as RFC 2253 text) and
one-line reasons for what goes wrong. What is checked, when: docs/devices.md."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrm_edge.errors import first_line

_PEM_CERT = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.DOTALL
)
_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}


class TlsConfigError(ValueError):
    """One of our own TLS files is unusable; the message is one line naming the file."""


@dataclass(frozen=True)
class TlsFiles:
    """Our certificate (PEM; may carry its chain after it), its private key (PEM,
    unencrypted) and the CA file (PEM) the other side's certificate must chain to."""

    cert: Path
    key: Path
    ca: Path


# --- certificate files -------------------------------------------------------------------
def _der_items(der: bytes, pos: int, end: int) -> list[tuple[int, int, int]]:
    """The DER TLVs in der[pos:end] as (tag, value start, value end)."""
    items = []
    while pos < end:
        if pos + 2 > end:
            raise ValueError("truncated DER")
        tag, length = der[pos], der[pos + 1]
        pos += 2
        if length & 0x80:
            n = length & 0x7F
            if not 1 <= n <= 4 or pos + n > end:
                raise ValueError("bad DER length")
            length = int.from_bytes(der[pos : pos + n], "big")
            pos += n
        if pos + length > end:
            raise ValueError("truncated DER")
        items.append((tag, pos, pos + length))
        pos += length
    return items


def _der_time(tag: int, raw: bytes) -> dt.datetime:
    text = raw.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ: years 1950-2049 (RFC 5280)
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise ValueError("not a time")
    return dt.datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=dt.timezone.utc)


def certificate_validity(der: bytes) -> tuple[dt.datetime, dt.datetime]:
    """(notBefore, notAfter) of an X.509 certificate in DER; ValueError if it is none.
    A few lines of DER walking, because ``ssl`` decodes only CA or peer certificates."""
    [(tag, a, b)] = _der_items(der, 0, len(der))  # Certificate ::= SEQUENCE
    tbs_tag, ta, tb = _der_items(der, a, b)[0]  # TBSCertificate ::= SEQUENCE
    if tag != 0x30 or tbs_tag != 0x30:
        raise ValueError("not a certificate")
    fields = _der_items(der, ta, tb)
    if fields and fields[0][0] == 0xA0:  # [0] version, explicit
        fields = fields[1:]
    _, va, vb = fields[3]  # serial, signature algorithm, issuer, validity
    (t1, a1, b1), (t2, a2, b2) = _der_items(der, va, vb)
    return _der_time(t1, der[a1:b1]), _der_time(t2, der[a2:b2])


def _read_certs(path: Path, what: str) -> list[bytes]:
    """The DER certificates in a PEM file; TlsConfigError naming ``path`` otherwise."""
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        raise TlsConfigError(f"{what} {path}: no such file") from None
    except OSError as e:
        raise TlsConfigError(f"{what} {path}: cannot read ({e.strerror or e})") from None
    ders = []
    for block in _PEM_CERT.findall(pem):
        try:
            der = base64.b64decode(b"".join(block.split()), validate=True)
            certificate_validity(der)
        except (binascii.Error, ValueError, IndexError):
            why = "a PEM block is not an X.509 certificate"
            raise TlsConfigError(f"{what} {path}: {why}") from None
        ders.append(der)
    if not ders:
        raise TlsConfigError(
            f"{what} {path}: not a certificate (expected PEM, '-----BEGIN CERTIFICATE-----')"
        )
    return ders


def _check_dates(der: bytes, path: Path, what: str) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    not_before, not_after = certificate_validity(der)
    if now < not_before:
        raise TlsConfigError(f"{what} {path}: not valid before {not_before:%Y-%m-%d %H:%M} UTC")
    if now > not_after:
        raise TlsConfigError(f"{what} {path}: expired on {not_after:%Y-%m-%d %H:%M} UTC")


def _load_own(ctx: ssl.SSLContext, files: TlsFiles) -> None:
    """Check our certificate (``--tls-cert``) and key (``--tls-key``), then load them."""
    leaf = _read_certs(files.cert, "--tls-cert")[0]
    _check_dates(leaf, files.cert, "--tls-cert")
    if not files.key.is_file():
        raise TlsConfigError(f"--tls-key {files.key}: no such file")
    try:
        # The password callback keeps OpenSSL from prompting on the terminal for an
        # encrypted key: an empty password fails like any unreadable key.
        ctx.load_cert_chain(files.cert, files.key, password=lambda: b"")
    except ssl.SSLError as e:
        if "KEY_VALUES_MISMATCH" in str(e):
            raise TlsConfigError(
                f"--tls-key {files.key}: does not match the certificate in {files.cert}"
            ) from None
        raise TlsConfigError(
            f"--tls-key {files.key}: not a private key (expected an unencrypted PEM key)"
        ) from None


def _load_ca(ctx: ssl.SSLContext, path: Path, what: str) -> None:
    for der in _read_certs(path, what):
        _check_dates(der, path, what)
    try:
        ctx.load_verify_locations(cafile=str(path))
    except ssl.SSLError as e:  # pragma: no cover - _read_certs has parsed every block
        raise TlsConfigError(f"{what} {path}: unusable ({e.reason or e})") from None
    if ctx.cert_store_stats()["x509_ca"] == 0:
        raise TlsConfigError(f"{what} {path}: holds no CA certificate (basicConstraints CA:TRUE)")


def _base_context(purpose: int) -> ssl.SSLContext:
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """The monitor's context: our certificate and key, and mutual TLS (a device must
    present a certificate chaining to ``files.ca``)."""
    ctx = _base_context(ssl.PROTOCOL_TLS_SERVER)
    _load_own(ctx, files)
    _load_ca(ctx, files.ca, "--tls-client-ca")
    # Devices do not resume sessions; no tickets also means the server never has a
    # handshake message to write after the handshake has completed.
    ctx.num_tickets = 0
    # A device half-closes after END without a close_notify; OpenSSL 3 would answer that
    # EOF with a decode_error alert. END (or its absence) already tells a complete session
    # from a cut one, so the EOF is taken as the end.
    ctx.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    return ctx


def client_context(files: TlsFiles) -> ssl.SSLContext:
    """A device's context: its certificate and key, and the CA the monitor's certificate
    must chain to; the monitor's hostname (or IP) is checked against its certificate."""
    ctx = _base_context(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = True
    _load_own(ctx, files)
    _load_ca(ctx, files.ca, "--tls-ca")
    return ctx


# --- the handshake -----------------------------------------------------------------------
def handshake_reason(error: BaseException) -> str:
    """One line for a failed handshake: OpenSSL's verification message for a certificate
    that failed, else its reason (e.g. "peer did not return a certificate")."""
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return f"certificate verify failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError) and error.reason:
        return error.reason.lower().replace("_", " ")
    return first_line(error, with_type=False)


def _escape(value: str) -> str:
    """An attribute value escaped as RFC 2253 requires."""
    out = re.sub(r'([,+"\\<>;])', r"\\\1", value)
    if out.startswith(("#", " ")):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


def subject_text(subject: Any) -> str:
    """``getpeercert()['subject']`` (RDNs, least specific first) as RFC 2253 text."""
    rdns = []
    for rdn in reversed(subject or ()):
        rdns.append("+".join(f"{_SHORT_NAMES.get(k, k)}={_escape(v)}" for k, v in rdn))
    return ",".join(rdns)


def peer_identity(sock: ssl.SSLSocket) -> str:
    """The identity of the device at the other end of a completed mutual-TLS handshake."""
    cert = sock.getpeercert() or {}
    return subject_text(cert.get("subject")) or "(certificate without a subject)"


def client_failure(error: ssl.SSLError, files: TlsFiles) -> str:
    """One line for a device whose TLS connection failed: the monitor's certificate refused
    by us (naming the CA file), or ours refused by the monitor (its alert)."""
    if isinstance(error, ssl.SSLCertVerificationError):
        why = error.verify_message or handshake_reason(error)
        return f"the monitor's certificate is refused: {why} (checked against {files.ca})"
    reason = handshake_reason(error)
    if "alert" in reason:
        return f"the monitor refused this device's certificate {files.cert} ({reason})"
    return f"TLS failed: {reason}"
