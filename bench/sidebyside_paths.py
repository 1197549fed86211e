"""What bench.sidebyside measures: its rows, and what each row's client sends.

A row (:class:`PathSpec`) names its middle process (``server``), its transport and
its DRM; :class:`Material` holds the run's keys, tokens and challenges, made once.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.pipeline import CHALLENGE as CLEARKEY_CHALLENGE
from bench.vendors import COM_KEY, COM_KEY_ID, KID
from licenseproxy.v1 import license_proxy_pb2 as pb
from proxy.challenge import samples
from proxy.tokens import development_token

ISSUER = "bench-sts"
SIGNING_KEY_ID = "bench-rs256"
DEVICE = "bench-device-1"
GRPC_METHOD = "/licenseproxy.v1.LicenseProxyService/AcquireLicense"
GRPC_HEADERS = {"content-type": "application/grpc", "te": "trailers"}
PLAYREADY_SOAP_ACTION = '"http://schemas.microsoft.com/DRM/2007/03/protocols/AcquireLicense"'


@dataclass(frozen=True)
class PathSpec:
    """One row of the table: what is measured, on which process, over which transport."""

    key: str
    label: str
    server: str
    transport: str
    drm: str

    @property
    def proxy(self) -> bool:
        """Whether the middle process is the proxy (counters checked, ``--before`` repeats it)."""
        return self.server in ("vendor", "default")


FULL = "RS256 + IP + device + policy + Axinom message"
PATHS = (
    PathSpec(
        "emulator", "upstream emulator direct (Axinom, Widevine)", "emulator", "http", "widevine"
    ),
    PathSpec(
        "forwarder",
        "bare aiohttp forwarder, pre-minted header, pooled session",
        "forwarder",
        "http",
        "widevine",
    ),
    PathSpec("bare-http", "bare aiohttp handler, fixed license", "baseline", "http", "clearkey"),
    PathSpec("bare-grpc", "bare grpc.aio handler, fixed license", "baseline", "grpc", "clearkey"),
    PathSpec("vendor-http", f"proxy HTTP player route, {FULL}", "vendor", "http", "widevine"),
    PathSpec("vendor-grpc", "proxy gRPC AcquireLicense, same work", "vendor", "grpc", "widevine"),
    PathSpec("playready-http", "proxy HTTP, same work, PlayReady", "vendor", "http", "playready"),
    PathSpec("playready-grpc", "proxy gRPC, same work, PlayReady", "vendor", "grpc", "playready"),
    PathSpec(
        "default-http",
        "proxy embedded default HTTP (ClearKey, HS256)",
        "default",
        "http",
        "clearkey",
    ),
    PathSpec(
        "default-grpc",
        "proxy embedded default gRPC (ClearKey, HS256)",
        "default",
        "grpc",
        "clearkey",
    ),
    PathSpec(
        "emulator-playready",
        "upstream emulator direct (Axinom, PlayReady)",
        "emulator",
        "http",
        "playready",
    ),
)
BY_KEY = {p.key: p for p in PATHS}
DEFAULT_PATHS = tuple(p.key for p in PATHS if p.key != "emulator-playready")
DRMS = {
    "widevine": pb.DRM_SYSTEM_WIDEVINE,
    "playready": pb.DRM_SYSTEM_PLAYREADY,
    "clearkey": pb.DRM_SYSTEM_CLEARKEY,
}


# -- what the clients send ----------------------------------------------------------------


@dataclass
class Material:
    """The run's keys, tokens and challenges, made once."""

    signing_key: rsa.RSAPrivateKey
    vendor_token: str
    default_token: str
    axinom_message: str
    challenges: dict[str, bytes]

    @classmethod
    def make(cls) -> Material:
        """Fresh keys and a token good for a day."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": "license-proxy",
            "sub": "bench-viewer",
            "iat": now,
            "exp": now + 86400,
            "vendor": "axinom",
            "device": DEVICE,
        }
        token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": SIGNING_KEY_ID})
        return cls(
            signing_key=key,
            vendor_token=token,
            default_token=development_token(ttl=86400),
            axinom_message=axinom_message(),
            challenges={
                "widevine": samples.widevine_license_request(key_ids=[KID], content_id=b"movie-1"),
                "playready": samples.playready_challenge(samples.wrm_header("4.3.0.0", [KID])),
                "clearkey": CLEARKEY_CHALLENGE,
            },
        )

    def public_pem(self) -> bytes:
        """The verification key the proxy's issuer is configured with."""
        return self.signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def axinom_message() -> str:
    """One License Service Message for the forwarder and the emulator-direct row, minted
    once (the proxy mints its own per request): the entitled key, a day to live."""
    expiry = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    envelope = {
        "version": 1,
        "com_key_id": COM_KEY_ID,
        "expiration_date": expiry,
        "message": {
            "type": "entitlement_message",
            "version": 2,
            "license": {"duration": 3600},
            "content_keys_source": {"inline": [{"id": str(uuid.UUID(bytes=KID))}]},
        },
    }
    return jwt.encode(envelope, COM_KEY, algorithm="HS256")


def http_headers(spec: PathSpec, material: Material) -> dict[str, str]:
    """The headers a player (or, for the emulator, the forwarder) sends on ``spec``'s path."""
    headers = {
        "widevine": {"Content-Type": "application/octet-stream"},
        "playready": {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": PLAYREADY_SOAP_ACTION,
        },
        "clearkey": {"Content-Type": "application/json"},
    }[spec.drm]
    if spec.server == "emulator":
        headers["X-AxDRM-Message"] = material.axinom_message
    elif spec.server == "vendor":
        headers["Authorization"] = f"Bearer {material.vendor_token}"
    elif spec.server == "default":
        headers["Authorization"] = f"Bearer {material.default_token}"
    return headers


def grpc_request(spec: PathSpec, material: Material) -> pb.AcquireLicenseRequest:
    """The AcquireLicense request of a gRPC path (the token in its ``token`` field)."""
    token = {"vendor": material.vendor_token, "default": material.default_token}.get(spec.server)
    return pb.AcquireLicenseRequest(
        drm_system=DRMS[spec.drm], challenge=material.challenges[spec.drm], token=token or ""
    )


def http_path(spec: PathSpec) -> str:
    """The URL path of an HTTP row on its server."""
    if spec.server in ("emulator", "forwarder"):
        return f"/{spec.drm}/AcquireLicense"
    return f"/v1/licenses/{spec.drm}"
