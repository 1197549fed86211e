"""Token verification cost per algorithm: first-seen tokens, repeated tokens, and the libraries.

``python -m bench.token [--tokens-kib 1] [--rounds 2000]`` signs one token of about the
given size per algorithm (HS256, RS256, ES256, EdDSA) and prints, in microseconds per token:

- ``first seen``: the token plugin's verifier with its cache off (every step, every time);
- ``repeated``: the same verifier with its cache on (a renewal, a second request);
- ``PyJWT decode`` / ``joserfc decode``: each library verifying the same token and claims
  on its own, the evidence for choosing how the compact form is parsed;
- ``parse PyJWT`` / ``parse ours``: taking the compact form apart only (PyJWT's
  ``PyJWS._load``; the verifier's, on joserfc's strict base64url decoder);
- ``signature``: the signature check alone (PyJWT's algorithm, key prepared once).

Each figure is the best of five runs of ``--rounds`` verifications on one event loop,
in CPU time of this process (``time.process_time``), so that other work on a shared
machine does not count against it.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import time
import warnings
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from plugins.token.keys import ALGORITHMS
from plugins.token.plugin import TokenPlugin
from proxy.builder import build_pipeline
from proxy.encoding import b64url_decode
from proxy.services import Services

ISSUER = "https://sts.bench.test/"
AUDIENCE = "license-proxy"
ALGS = ("HS256", "RS256", "ES256", "EdDSA")
SECRET = bytes(range(64))


def signing_key(alg: str) -> Any:
    """A fresh private key (or secret) for ``alg``."""
    if alg == "HS256":
        return SECRET
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def key_table(alg: str, key: Any) -> dict[str, Any]:
    """The ``[[auth.issuers.keys]]`` entry that verifies ``key``'s tokens."""
    if alg == "HS256":
        return {"id": "k1", "secret": f"hex:{SECRET.hex()}"}
    pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return {"id": "k1", "public_key": pem.decode()}


def make_token(alg: str, key: Any, size: int) -> str:
    """A token of about ``size`` bytes (a ``pad`` claim fills it up)."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bench", "iat": now, "exp": now + 3600}
    token = jwt.encode(claims, key, algorithm=alg, headers={"kid": "k1"})
    claims["pad"] = "x" * max(0, (size - len(token)) * 3 // 4)
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": "k1"})


def verifier_for(alg: str, key: Any, cache_size: int) -> Any:
    """The token plugin's verifier, configured the way the proxy configures it."""
    plugin = TokenPlugin()
    auth = {
        "issuers": [
            {
                "issuer": ISSUER,
                "audiences": [AUDIENCE],
                "algorithms": [alg],
                "keys": [key_table(alg, key)],
            }
        ],
        "cache_size": cache_size,
    }
    build_pipeline(
        {"auth": auth}, plugins=[("token", plugin)], load_entrypoints=False, services=Services()
    )
    return plugin.verifier


async def per_call_us(call: Callable[[], Awaitable[Any] | Any], rounds: int) -> float:
    """Best of five: microseconds per call of ``call`` (awaited when it returns an awaitable)."""
    best = float("inf")
    probe = call()
    is_async = asyncio.iscoroutine(probe)
    if is_async:
        await probe
    for _ in range(5):
        started = time.process_time()
        if is_async:
            for _ in range(rounds):
                await call()  # type: ignore[misc]
        else:
            for _ in range(rounds):
                call()
        best = min(best, (time.process_time() - started) / rounds)
    return best * 1e6


def joserfc_key(alg: str, key: Any) -> Any:
    """The public key as joserfc imports it."""
    if alg == "HS256":
        return OctKey.import_key(key)
    kind = {"RS256": RSAKey, "ES256": ECKey, "EdDSA": OKPKey}[alg]
    return kind.import_key(key.public_key())


async def measure(alg: str, size: int, rounds: int) -> dict[str, float]:
    """Every figure for one algorithm."""
    key = signing_key(alg)
    token = make_token(alg, key, size)
    cold = verifier_for(alg, key, cache_size=0)
    warm = verifier_for(alg, key, cache_size=1024)
    public = key if alg == "HS256" else key.public_key()
    prepared = ALGORITHMS[alg].prepare_key(public)
    jose_key = joserfc_key(alg, key)
    registry = JWSRegistry(algorithms=[alg])
    claims_registry = jose_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER}, aud={"essential": True, "value": AUDIENCE}
    )
    pyjwt = jwt.PyJWT()
    pyjws = jwt.PyJWS()
    head, _, signature = token.rpartition(".")
    signing_input, signature_bytes = head.encode(), b64url_decode(signature)

    def pyjwt_decode() -> Any:
        return pyjwt.decode(token, public, algorithms=[alg], audience=AUDIENCE, issuer=ISSUER)

    def joserfc_decode() -> Any:
        decoded = jose_jwt.decode(token, jose_key, algorithms=[alg], registry=registry)
        claims_registry.validate(decoded.claims)
        return decoded

    return {
        "size": len(token),
        "first seen": await per_call_us(lambda: cold.verify(token), rounds),
        "repeated": await per_call_us(lambda: warm.verify(token), rounds),
        "PyJWT decode": await per_call_us(pyjwt_decode, rounds),
        "joserfc decode": await per_call_us(joserfc_decode, rounds),
        "parse PyJWT": await per_call_us(lambda: pyjws._load(token), rounds),
        "parse ours": await per_call_us(lambda: cold.parse(token), rounds),
        "signature": await per_call_us(
            lambda: ALGORITHMS[alg].verify(signing_input, prepared, signature_bytes), rounds
        ),
    }


COLUMNS = (
    "first seen",
    "repeated",
    "PyJWT decode",
    "joserfc decode",
    "parse PyJWT",
    "parse ours",
    "signature",
)


async def main(argv: list[str] | None = None) -> None:
    """Measure every algorithm and print a Markdown table."""
    parser = argparse.ArgumentParser(prog="python -m bench.token", description=__doc__)
    parser.add_argument("--tokens-kib", type=float, default=1.0, help="token size in KiB")
    parser.add_argument("--rounds", type=int, default=2000, help="verifications per run")
    args = parser.parse_args(argv)
    # joserfc marks EdDSA as superseded (RFC 9864); the comparison runs it all the same.
    warnings.simplefilter("ignore")
    size = int(args.tokens_kib * 1024)
    print(
        f"Python {platform.python_version()}, PyJWT {version('PyJWT')}, "
        f"joserfc {version('joserfc')}, cryptography {version('cryptography')}; "
        f"CPU microseconds per token, best of 5 x {args.rounds}\n"
    )
    print("| alg | token bytes | " + " | ".join(COLUMNS) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in COLUMNS) + " |")
    for alg in ALGS:
        figures = await measure(alg, size, args.rounds)
        cells = " | ".join(f"{figures[c]:.1f}" for c in COLUMNS)
        print(f"| {alg} | {figures['size']:.0f} | {cells} |")


if __name__ == "__main__":
    asyncio.run(main())
