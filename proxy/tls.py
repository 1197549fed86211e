"""TLS settings of a listener (``server.grpc.tls``, ``server.http.tls``) and caller identities.

Certificates and keys are named by ``file:`` reference and checked completely
when the config is validated: each file readable, a PEM certificate chain, an
unencrypted PEM private key that belongs to the chain's first certificate, a
client CA bundle, and a context OpenSSL accepts. So a bad file fails the start
(or is refused by a reload, which keeps the running certificate) with its key
path, never a handshake later. Errors name the file, never its content.

A verified client certificate gives its caller an identity: each DNS name of
its subject alternative names as ``dns:NAME`` and each URI (SPIFFE ids are URIs)
as ``uri:URI``. ``server.trusted_callers`` lists the identities trusted like
``server.trusted_proxies`` CIDRs.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, ValidationInfo, field_validator
from pydantic import model_validator as _model_validator
from pydantic_core import core_schema

from proxy.secrets import BASE_DIR_CONTEXT_KEY

#: The oldest protocol either listener accepts.
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


class PemFile:
    """A file named by a ``file:`` reference in the config: its path and the bytes read at
    validation. Shown as its reference; compared by content, so a reload sees a rotated file."""

    __slots__ = ("data", "path", "reference")

    def __init__(self, path: Path, data: bytes, reference: str) -> None:
        self.path = path
        self.data = data
        self.reference = reference

    def __repr__(self) -> str:
        return f"PemFile({self.reference!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PemFile) and (other.path, other.data) == (self.path, self.data)

    def __hash__(self) -> int:
        return hash((self.path, self.data))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_plain_validator_function(
            _read_pem_file,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda f: f.reference, return_schema=core_schema.str_schema()
            ),
        )


def _read_pem_file(value: Any, info: ValidationInfo) -> PemFile:
    if isinstance(value, PemFile):
        return value
    if not isinstance(value, str) or not value.startswith("file:") or len(value) == 5:
        raise ValueError("must be a file: reference, e.g. file:/etc/license-proxy/tls/cert.pem")
    path = Path(value[5:]).expanduser()
    base_dir = (info.context or {}).get(BASE_DIR_CONTEXT_KEY)
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    return PemFile(path, data, value)


def _certificates(pem: PemFile) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(pem.data)
    except ValueError:
        certificates = []
    if not certificates:
        raise ValueError(f"{pem.path} holds no PEM certificate")
    return certificates


class TlsSettings(BaseModel):
    """``server.grpc.tls`` / ``server.http.tls``: serve this listener over TLS.

    A change to the files takes effect on SIGHUP for new connections; connections
    already open keep the certificate they were made with. Turning TLS or client
    certificates on or off needs a restart.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    cert: PemFile
    """The certificate chain (PEM, the server's certificate first), by ``file:`` reference."""
    key: PemFile
    """The certificate's private key (PEM, unencrypted), by ``file:`` reference."""
    client_ca: PemFile | None = None
    """CA certificates (PEM) a client certificate must chain to, by ``file:`` reference.
    When set, every client must present a valid certificate (mutual TLS); its identity
    may then be listed in ``server.trusted_callers``."""

    @field_validator("cert", "client_ca")
    @classmethod
    def _holds_certificates(cls, pem: PemFile | None) -> PemFile | None:
        if pem is not None:
            _certificates(pem)
        return pem

    @field_validator("key")
    @classmethod
    def _holds_a_key(cls, pem: PemFile) -> PemFile:
        private_key(pem)
        return pem

    @_model_validator(mode="after")
    def _key_matches_and_openssl_agrees(self) -> TlsSettings:
        leaf = _certificates(self.cert)[0]
        if _public_bytes(leaf.public_key()) != _public_bytes(private_key(self.key).public_key()):
            raise ValueError(
                f"key: {self.key.reference} is not the private key of the certificate in "
                f"{self.cert.reference}"
            )
        try:
            server_context(self)
        except (ssl.SSLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
            raise ValueError(f"OpenSSL refuses these files: {reason}") from None
        return self


def private_key(pem: PemFile) -> Any:
    """The private key in ``pem``; ValueError naming the file when there is none or it is
    encrypted."""
    try:
        return serialization.load_pem_private_key(pem.data, password=None)
    except TypeError:
        raise ValueError(
            f"{pem.path} holds an encrypted private key; give it unencrypted "
            "(protect it with the file's permissions)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError(f"{pem.path} holds no PEM private key this proxy can use") from None


def _public_bytes(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """A server-side context for the listener: TLS 1.2 or later, the certificate chain and
    key, and with ``client_ca`` a required, verified client certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    context.load_cert_chain(settings.cert.path, settings.key.path)
    if settings.client_ca is not None:
        context.load_verify_locations(cadata=settings.client_ca.data.decode("ascii", "replace"))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


# -- caller identities -----------------------------------------------------------------


def caller_identity(text: str) -> str:
    """The canonical form of a ``server.trusted_callers`` entry: ``dns:NAME`` (lower case) or
    ``uri:URI``; a bare ``spiffe://`` id (or any ``scheme://`` URI) is a URI."""
    text = text.strip()
    kind, sep, value = text.partition(":")
    if sep and kind.lower() == "dns":
        name = value.strip().rstrip(".").lower()
        if not name or any(c.isspace() or c in "/:@" for c in name):
            raise ValueError(f"{text!r} is not a DNS name")
        return f"dns:{name}"
    if sep and kind.lower() == "uri":
        value = value.strip()
        if "://" not in value:
            raise ValueError(f"{text!r} is not a URI (spiffe://trust-domain/path)")
        return f"uri:{value}"
    if "://" in text:
        return f"uri:{text}"
    raise ValueError(
        f"{text!r} is not an identity: use dns:NAME, uri:URI or a spiffe:// id "
        "(matched against the client certificate's subject alternative names)"
    )


def certificate_identities(peercert: Mapping[str, Any] | None) -> frozenset[str]:
    """Identities of a verified peer certificate as :meth:`ssl.SSLObject.getpeercert` returns
    it (empty when the connection verified no client certificate)."""
    if not peercert:
        return frozenset()
    names: set[str] = set()
    for kind, value in peercert.get("subjectAltName", ()):
        if kind == "DNS":
            names.add(f"dns:{value.rstrip('.').lower()}")
        elif kind == "URI":
            names.add(f"uri:{value}")
    return frozenset(names)


def grpc_identities(auth_context: Mapping[str, Iterable[bytes]]) -> frozenset[str]:
    """Identities of a gRPC caller from ``ServicerContext.auth_context()`` (grpc fills
    ``peer_dns`` and ``peer_uri`` from a client certificate it verified)."""
    names: set[str] = set()
    for value in auth_context.get("peer_dns", ()):
        names.add(f"dns:{value.decode('utf-8', 'replace').rstrip('.').lower()}")
    for value in auth_context.get("peer_uri", ()):
        names.add(f"uri:{value.decode('utf-8', 'replace')}")
    return frozenset(names)


__all__ = [
    "MINIMUM_VERSION",
    "PemFile",
    "TlsSettings",
    "caller_identity",
    "certificate_identities",
    "grpc_identities",
    "private_key",
    "server_context",
]
