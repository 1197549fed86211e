"""Real certificates for the TLS tests, made with ``cryptography``: a CA, server
certificates for loopback, and client certificates carrying DNS and URI (SPIFFE) names."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAY = datetime.timedelta(days=1)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


@dataclass
class Issued:
    """A certificate and its key, as PEM."""

    cert_pem: bytes
    key_pem: bytes
    name: str

    def write(self, folder: Path, stem: str | None = None) -> tuple[Path, Path]:
        """Write ``STEM.pem`` and ``STEM.key`` in ``folder``; return both paths."""
        stem = stem or self.name
        cert, key = folder / f"{stem}.pem", folder / f"{stem}.key"
        cert.write_bytes(self.cert_pem)
        key.write_bytes(self.key_pem)
        return cert, key


class CertificateAuthority:
    """A self-signed CA issuing server and client certificates for one test."""

    def __init__(self, name: str = "License Proxy Test CA") -> None:
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - _DAY)
            .not_valid_after(_now() + 2 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate (what clients and the server trust)."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def write(self, folder: Path, stem: str = "ca") -> Path:
        """Write the CA certificate as ``STEM.pem``."""
        path = folder / f"{stem}.pem"
        path.write_bytes(self.cert_pem)
        return path

    def issue(
        self,
        common_name: str,
        *,
        dns: tuple[str, ...] = (),
        uris: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        client: bool = False,
        expired: bool = False,
    ) -> Issued:
        """A leaf certificate for a server (``client=False``) or a client."""
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.UniformResourceIdentifier(u) for u in uris]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        start = _now() - (3 * _DAY if expired else _DAY)  # valid for two days from start
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + 2 * _DAY)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key), common_name)

    def server(self, common_name: str = "license-proxy") -> Issued:
        """A server certificate for loopback (127.0.0.1, ::1, localhost)."""
        return self.issue(common_name, dns=("localhost",), ips=("127.0.0.1", "::1"))


def encrypted_key_pem(password: bytes = b"secret") -> bytes:
    """A PEM private key protected by a password (the proxy refuses those)."""
    return _key_pem(ec.generate_private_key(ec.SECP256R1()), password)


def client_context(ca: CertificateAuthority, client: Issued | None = None) -> ssl.SSLContext:
    """A client context trusting ``ca``, presenting ``client`` when given."""
    context = ssl.create_default_context(cadata=ca.cert_pem.decode())
    if client is not None:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            cert, key = client.write(Path(folder))
            context.load_cert_chain(cert, key)
    return context


def peer_common_name(transport_ssl_object: ssl.SSLObject | None) -> str | None:
    """The common name of the certificate the server presented on a client connection."""
    if transport_ssl_object is None:
        return None
    der = transport_ssl_object.getpeercert(binary_form=True)
    if der is None:
        return None
    subject = x509.load_der_x509_certificate(der).subject
    return subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value  # type: ignore[return-value]
