"""tls.py: our own certificate files checked at start, one line naming the file for each
problem; contexts that refuse anything below TLS 1.2; identities as RFC 2253 text, the
same as ``openssl x509 -subject -nameopt RFC2253`` prints."""

from __future__ import annotations

import datetime as dt
import ssl
import subprocess
from pathlib import Path

import pytest
from mrm_edge.runtime.sources.tls import (
    TlsConfigError,
    TlsFiles,
    certificate_validity,
    client_context,
    server_context,
    subject_text,
)

from tests.runtime.sources.pki import Pki, openssl_subject


def der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def test_good_files_make_mutual_tls_contexts(pki: Pki) -> None:
    server = server_context(TlsFiles(pki.server.cert, pki.server.key, pki.ca))
    client = client_context(pki.devices["device-a"])
    for ctx in (server, client):
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
        assert ctx.verify_mode == ssl.CERT_REQUIRED  # the server too: mutual TLS
    assert client.check_hostname


def test_validity_dates_read_from_der_match_openssl(pki: Pki) -> None:
    not_before, not_after = certificate_validity(der(pki.expired.cert))
    assert not_before == dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    assert not_after == dt.datetime(2020, 2, 1, tzinfo=dt.timezone.utc)
    out = subprocess.run(["openssl", "x509", "-in", pki.ca, "-noout", "-enddate"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    expect = dt.datetime.strptime(out.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y GMT")
    assert certificate_validity(der(pki.ca))[1] == expect.replace(tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing cert", r"--tls-cert .*nope\.pem: no such file"),
        ("not a cert", r"--tls-cert .*not-a-cert\.pem: not a certificate \(expected PEM"),
        ("expired", r"--tls-cert .*expired\.pem: expired on 2020-02-01 00:00 UTC"),
        ("key mismatch", r"--tls-key .*device-b\.key: does not match the certificate in .*server"),
        ("key not a key", r"--tls-key .*server\.pem: not a private key"),
        ("missing key", r"--tls-key .*nope\.key: no such file"),
        ("ca not a cert", r"--tls-client-ca .*not-a-cert\.pem: not a certificate"),
        ("ca not a ca", r"--tls-client-ca .*device-a\.pem: holds no CA certificate"),
        ("missing ca", r"--tls-client-ca .*nope-ca\.pem: no such file"),
    ],
)
def test_each_problem_with_our_files_is_one_line_naming_the_file(
    pki: Pki, case: str, message: str
) -> None:
    s, d = pki.server, pki.dir
    files = {
        "missing cert": TlsFiles(d / "nope.pem", s.key, pki.ca),
        "not a cert": TlsFiles(pki.not_a_cert, s.key, pki.ca),
        "expired": TlsFiles(pki.expired.cert, pki.expired.key, pki.ca),
        "key mismatch": TlsFiles(s.cert, pki.devices["device-b"].key, pki.ca),
        "key not a key": TlsFiles(s.cert, s.cert, pki.ca),
        "missing key": TlsFiles(s.cert, d / "nope.key", pki.ca),
        "ca not a cert": TlsFiles(s.cert, s.key, pki.not_a_cert),
        "ca not a ca": TlsFiles(s.cert, s.key, pki.devices["device-a"].cert),
        "missing ca": TlsFiles(s.cert, s.key, d / "nope-ca.pem"),
    }[case]
    with pytest.raises(TlsConfigError, match=message) as e:
        server_context(files)
    assert "\n" not in str(e.value)


def test_the_device_side_names_its_own_ca_option(pki: Pki) -> None:
    a = pki.devices["device-a"]
    with pytest.raises(TlsConfigError, match=r"^--tls-ca .*not-a-cert\.pem: not a certificate"):
        client_context(TlsFiles(a.cert, a.key, pki.not_a_cert))


def test_subject_text_is_rfc2253_as_openssl_prints_it(pki: Pki) -> None:
    # ssl decodes a CA certificate for us; a device's subject is checked the same way
    # from a live handshake in test_tcp_tls.py.
    [cert] = ssl.create_default_context(cafile=str(pki.ca)).get_ca_certs()
    assert subject_text(cert["subject"]) == openssl_subject(pki.ca) == "CN=Test Ward CA,O=Ward 3"
    tricky = ((("organizationName", "Ward 3, East"),), (("commonName", " bed+7 "),))
    assert subject_text(tricky) == "CN=\\ bed\\+7\\ ,O=Ward 3\\, East"
