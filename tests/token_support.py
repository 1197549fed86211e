"""Shared pieces of the token tests: keys, signing, a real JWKS/OIDC server on loopback, and a
token plugin built alone through the real config path."""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

from plugins.token.plugin import TokenPlugin
from proxy.builder import build_pipeline
from proxy.encoding import b64url_decode, b64url_encode
from proxy.errors import ProxyError
from proxy.pipeline import Pipeline
from proxy.services import Services
from proxy.testing import FakeClock
from proxy.tokens import mint
from tests.conftest import clearkey_request

ISSUER = "https://sts.example.test/"
AUDIENCE = "license-proxy"
KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
_ALGORITHMS = get_default_algorithms()


@functools.cache
def rsa_key(name: str = "rsa", bits: int = 2048) -> rsa.RSAPrivateKey:
    """An RSA private key, made once per test session and name."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def ec_key(name: str = "ec", curve: str = "P-256") -> ec.EllipticCurvePrivateKey:
    """An EC private key on ``curve`` (P-256, P-384, P-521)."""
    curves = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
    return ec.generate_private_key(curves[curve])


@functools.cache
def ed_key(name: str = "ed") -> ed25519.Ed25519PrivateKey:
    """An Ed25519 private key."""
    return ed25519.Ed25519PrivateKey.generate()


def public_jwk(private_key: Any, kid: str | None = None, **members: Any) -> dict[str, Any]:
    """The public JWK of ``private_key`` (any type PyJWT knows), with ``kid`` and extra members."""
    public = private_key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwk = _ALGORITHMS["RS256"].to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = _ALGORITHMS["ES256"].to_jwk(public, as_dict=True)
    else:
        jwk = _ALGORITHMS["EdDSA"].to_jwk(public, as_dict=True)
    if kid is not None:
        jwk["kid"] = kid
    jwk.update(members)
    return jwk


def claims(now: float, **extra: Any) -> dict[str, Any]:
    """A claim set the default test issuer accepts at ``now``."""
    body: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": int(now),
        "exp": int(now) + 600,
    }
    for name, value in extra.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def sign(
    body: dict[str, Any],
    key: Any,
    alg: str = "RS256",
    kid: str | None = "k1",
    headers: dict[str, Any] | None = None,
) -> str:
    """A compact JWS of ``body`` signed with ``key``."""
    return mint(body, key, algorithm=alg, kid=kid, headers=headers)


def raw_token(
    header: Any, payload: bytes, signing_key: bytes | None = None, alg: str = "HS256"
) -> str:
    """A compact JWS built by hand (any header, any payload bytes), HMAC-signed when a key is
    given, else with an empty signature."""
    header_bytes = header if isinstance(header, bytes) else json.dumps(header).encode()
    signing_input = b64url_encode(header_bytes) + "." + b64url_encode(payload)
    signature = b""
    if signing_key is not None:
        signature = _ALGORITHMS[alg].sign(signing_input.encode(), signing_key)
    return signing_input + "." + b64url_encode(signature)


def flip_signature_bit(token: str, bit: int = 0) -> str:
    """The token with one bit of its decoded signature flipped (the base64 stays canonical)."""
    head, _, signature = token.rpartition(".")
    raw = bytearray(b64url_decode(signature))
    raw[bit // 8] ^= 1 << (bit % 8)
    return head + "." + b64url_encode(bytes(raw))


def issuer(**overrides: Any) -> dict[str, Any]:
    """An ``[[auth.issuers]]`` table for the default test issuer."""
    table: dict[str, Any] = {"issuer": ISSUER, "audiences": [AUDIENCE], "algorithms": ["RS256"]}
    table.update(overrides)
    return table


def build_token_plugin(
    auth: dict[str, Any],
    *,
    clock: FakeClock | None = None,
    server: dict[str, Any] | None = None,
    beside: tuple[tuple[str, Any], ...] = (),
) -> tuple[TokenPlugin, Pipeline]:
    """A token plugin configured from ``[auth]`` alone (and the ``beside`` plugins, by name),
    through the real config path."""
    plugin = TokenPlugin()
    raw: dict[str, Any] = {"auth": auth}
    if server is not None:
        raw["server"] = server
    pipeline = build_pipeline(
        raw,
        plugins=[("token", plugin), *beside],
        load_entrypoints=False,
        services=Services(clock=clock or FakeClock()),
    )
    return plugin, pipeline


async def reason(plugin: TokenPlugin, token: str) -> str:
    """What the plugin's verifier answers for ``token``: ``OK`` or the reason code."""
    assert plugin.verifier is not None
    try:
        await plugin.verifier.verify(token)
    except ProxyError as exc:
        return exc.reason.value
    return "OK"


async def acquire(proxy: Any, http: Any, token: str | None, **headers: str) -> str:
    """POST a ClearKey license request through the HTTP bridge: ``OK`` or the reason code."""
    if token is not None:
        headers.setdefault("Authorization", f"Bearer {token}")
    async with http.post(
        f"{proxy.http_url}/v1/licenses/clearkey", data=clearkey_request(KID), headers=headers
    ) as response:
        body = await response.read()
        if response.status == 200:
            return "OK"
        problem = json.loads(body)
        assert problem["status"] == response.status
        return problem["reason"]


async def eventually(condition: Callable[[], bool], what: str, attempts: int = 500) -> None:
    """Wait (bounded, 10 ms steps) until ``condition()`` holds; fail naming ``what``."""
    for _ in range(attempts):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


@dataclass
class KeyServer:
    """A real JWKS and OpenID Connect discovery endpoint on loopback that a test steers.

    :ivar keys: the JWKs published now (replace or mutate to rotate).
    :ivar cache_control: the ``Cache-Control`` header sent with the key set, if any.
    :ivar fail_with: answer the key set with this HTTP status instead.
    :ivar stall: hold key-set answers until this event is set (None: answer at once).
    :ivar issuer: the ``issuer`` the discovery document names.
    """

    keys: list[dict[str, Any]] = field(default_factory=list)
    cache_control: str | None = None
    fail_with: int | None = None
    stall: asyncio.Event | None = None
    issuer: str = ISSUER
    requests: int = 0
    jwks_requests: int = 0
    discovery_requests: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def jwks_uri(self) -> str:
        """The key set's URL."""
        return f"{self.base}/keys"

    @property
    def discovery_url(self) -> str:
        """The discovery document's URL."""
        return f"{self.base}/.well-known/openid-configuration"

    @web.middleware
    async def _count(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests += 1
        return await handler(request)

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_requests += 1
        if self.stall is not None:
            await self.stall.wait()
        if self.fail_with is not None:
            return web.Response(status=self.fail_with, text="unavailable")
        headers = {"Cache-Control": self.cache_control} if self.cache_control else {}
        return web.json_response({"keys": list(self.keys)}, headers=headers)

    async def _discovery(self, request: web.Request) -> web.Response:
        self.discovery_requests += 1
        return web.json_response(
            {
                "issuer": self.issuer,
                "jwks_uri": self.jwks_uri,
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def start(self) -> KeyServer:
        """Serve on loopback (the same port again after :meth:`stop`)."""
        app = web.Application(middlewares=[self._count])
        app.router.add_get("/keys", self._jwks)
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        """Take the server down: connections are refused from now on."""
        if self._runner is not None:
            if self.stall is not None:
                self.stall.set()
            await self._runner.cleanup()
            self._runner = None
