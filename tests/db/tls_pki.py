"""Throw-away certificates for the TLS tests (the ``cryptography`` package, a dev dependency).

:func:`make_pki` writes, into a directory: a CA (``ca.pem``), a server certificate it signed
for ``localhost`` / ``127.0.0.1`` / ``::1`` (``server.pem`` + ``server.key``), a second,
unrelated CA (``other_ca.pem``), a certificate the first CA signed for another host name
only (``wrong_host.pem`` + ``wrong_host.key``), an expired one for ``localhost``
(``expired.pem`` + ``expired.key``) and a file that is no certificate (``not_a_cert.pem``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_NOW = dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    wrong_host_cert: Path
    wrong_host_key: Path
    expired_cert: Path
    expired_key: Path
    not_a_cert: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOW - dt.timedelta(days=1))
        .not_valid_after(_NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    names: list[x509.GeneralName],
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = _key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("dealhunter test server"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        key_path = path.with_suffix(".key")
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_path.chmod(0o600)


def make_pki(directory: Path) -> Pki:
    """Write the certificates described in the module doc into *directory*."""
    ca = _ca("dealhunter test CA")
    other = _ca("some other CA")
    local = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
             x509.IPAddress(ipaddress.ip_address("::1"))]  # fmt: skip
    valid = {"not_before": _NOW - dt.timedelta(days=1), "not_after": _NOW + dt.timedelta(days=30)}
    server = _leaf(ca, local, **valid)
    wrong = _leaf(ca, [x509.DNSName("db.example.invalid")], **valid)
    expired = _leaf(ca, local, not_before=_NOW - dt.timedelta(days=30), not_after=_NOW - dt.timedelta(days=1))
    _write(directory / "ca.pem", ca[0])
    _write(directory / "other_ca.pem", other[0])
    _write(directory / "server.pem", *server)
    _write(directory / "wrong_host.pem", *wrong)
    _write(directory / "expired.pem", *expired)
    (directory / "not_a_cert.pem").write_text("this is not a certificate\n")
    return Pki(
        ca=directory / "ca.pem",
        other_ca=directory / "other_ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        wrong_host_cert=directory / "wrong_host.pem",
        wrong_host_key=directory / "wrong_host.key",
        expired_cert=directory / "expired.pem",
        expired_key=directory / "expired.key",
        not_a_cert=directory / "not_a_cert.pem",
    )
