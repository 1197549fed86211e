"""Who is asking, as DRMtoday reads it: the upfront ``x-dt-auth-token`` and the custom data.

The upfront token (VENDOR_FACTS 9.3) is a JWT signed with a shared secret (HS256 by
default): header ``alg``, ``kid`` (the secret's id), ``typ``; claims ``optData``
(serialized JSON ``{"merchant", "userId"[, "sessionId"]}``, a string, not an
object), ``crt`` (the serialized Customer Rights Token, a string too), ``iat``,
``exp`` and a fresh ``jti``. The custom data (9.2) is standard base64 of
``{"userId", "sessionId", "merchant"}``. Both serialize compact JSON in the key
order castLabs' examples use, so the test vectors of 9.9 come out bit for bit.

The adapter signs with an :func:`auth_signer` built once, with the backend;
:func:`auth_token` is the same token in one call.
"""

from __future__ import annotations

import base64
from typing import Any

from proxy import JwsSigner, json_bytes


def compact(doc: Any) -> str:
    """Compact JSON text, keys in the order given."""
    return json_bytes(doc).decode("utf-8")


def opt_data(merchant: str, user_id: str, session_id: str | None = None) -> str:
    """The ``optData`` claim: ``{"merchant", "userId"[, "sessionId"]}`` serialized."""
    doc = {"merchant": merchant, "userId": user_id}
    if session_id:
        doc["sessionId"] = session_id
    return compact(doc)


def custom_data(merchant: str, user_id: str, session_id: str | None = None) -> str:
    """The ``x-dt-custom-data`` value: base64 of ``{"userId", "sessionId", "merchant"}``."""
    doc = {"userId": user_id}
    if session_id:
        doc["sessionId"] = session_id
    doc["merchant"] = merchant
    return base64.b64encode(compact(doc).encode("utf-8")).decode("ascii")


def auth_signer(key: bytes, key_id: str, algorithm: str) -> JwsSigner:
    """The upfront token's signer: the shared secret, header ``alg``, ``kid``, ``typ``."""
    return JwsSigner(algorithm, key, headers={"kid": key_id, "typ": "JWT"})


def auth_claims(*, opt: str, crt: str, iat: int, exp: int | None, jti: str) -> dict[str, Any]:
    """The upfront token's claims, in castLabs' order.

    :param opt: the serialized ``optData`` (:func:`opt_data`).
    :param crt: the serialized Customer Rights Token.
    """
    claims: dict[str, Any] = {"optData": opt, "crt": crt, "iat": iat}
    if exp is not None:
        claims["exp"] = exp
    claims["jti"] = jti
    return claims


def auth_token(
    key: bytes,
    key_id: str,
    algorithm: str,
    *,
    opt: str,
    crt: str,
    iat: int,
    exp: int | None,
    jti: str,
) -> str:
    """The upfront authorization token (compact JWS), signer and claims in one call."""
    claims = auth_claims(opt=opt, crt=crt, iat=iat, exp=exp, jti=jti)
    return auth_signer(key, key_id, algorithm).sign(claims)
