"""What signing a vendor token costs: ``python -m bench.signing``.

For each algorithm the vendor adapters sign with, the same claims (an Axinom-sized
License Service Message, about 700 bytes of JSON) signed by ``jwt.encode`` with the
key as an adapter held it (bytes, or a key object already parsed), and by the kit's
:class:`~proxy.JwsSigner` (key and header prepared once); then the claims' JSON alone,
by ``json.dumps`` with compact separators and by orjson (``proxy.json_bytes``).
Prints process CPU microseconds per call, best of a few rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from proxy import JwsSigner, json_bytes

CLAIMS: dict[str, Any] = {
    "version": 1,
    "com_key_id": "8c5c1a44-2d7e-4f0b-9a55-7d2f4f0f4e11",
    "id": "0c6f3c1e-0b39-4d7c-8f3e-5f2d1a9b8c7d",
    "expiration_date": "2025-06-01T12:01:00+00:00",
    "message": {
        "type": "entitlement_message",
        "version": 2,
        "license": {
            "duration": 172800,
            "allow_persistence": True,
            "playready": {"playback_duration": 10800},
            "widevine": {"allow_playback": True, "playback_duration": 10800},
        },
        "content_keys_source": {
            "inline": [
                {"id": "00000000-0000-0000-0000-000000000001", "usage_policy": "SD"},
                {"id": "00000000-0000-0000-0000-000000000002", "usage_policy": "HD"},
            ]
        },
        "content_key_usage_policies": [
            {"name": "SD", "widevine": {"device_security_level": "SW_SECURE_CRYPTO"}},
            {
                "name": "HD",
                "widevine": {"device_security_level": "HW_SECURE_ALL", "hdcp": "2.2"},
                "playready": {"min_device_security_level": 3000},
            },
        ],
        "session": {"user_id": "alice", "id": "session-1"},
    },
}


def keys() -> dict[str, Any]:
    """A fresh key per algorithm, as the adapters hold them."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "HS256": os.urandom(32),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
        "RS256": rsa_key,
        "PS256": rsa_key,
    }


def per_call_us(function: Callable[[], Any], calls: int, rounds: int) -> float:
    """Best-of-``rounds`` CPU microseconds per call of ``function``."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(calls):
            function()
        best = min(best, (time.process_time() - start) / calls * 1e6)
    return best


def main(argv: list[str]) -> None:
    """Print a Markdown table: ``jwt.encode`` beside ``JwsSigner.sign``, per algorithm."""
    parser = argparse.ArgumentParser(prog="python -m bench.signing")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    print("| algorithm | jwt.encode us | JwsSigner.sign us |")
    print("| --- | ---: | ---: |")
    headers = {"kid": "k1"}
    for algorithm, key in keys().items():
        signer = JwsSigner(algorithm, key, headers=headers)
        calls = args.calls if algorithm[:2] in ("HS", "ES", "Ed") else args.calls // 10
        encode = per_call_us(
            lambda: jwt.encode(CLAIMS, key, algorithm=algorithm, headers=headers),  # noqa: B023
            calls,
            args.rounds,
        )
        sign = per_call_us(lambda: signer.sign(CLAIMS), calls, args.rounds)  # noqa: B023
        print(f"| {algorithm} | {encode:.1f} | {sign:.1f} |")
    dumps = per_call_us(
        lambda: json.dumps(CLAIMS, separators=(",", ":")).encode(), args.calls, args.rounds
    )
    fast = per_call_us(lambda: json_bytes(CLAIMS), args.calls, args.rounds)
    size = len(json_bytes(CLAIMS))
    print(f"| claims JSON ({size} bytes): json.dumps / orjson | {dumps:.1f} | {fast:.1f} |")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
