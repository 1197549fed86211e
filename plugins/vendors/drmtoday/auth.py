"""Who is asking, as DRMtoday reads it: the upfront ``x-dt-auth-token`` and the custom data.

The upfront token (VENDOR_FACTS 9.3) is a JWT signed with a shared secret (HS256 by
default): header ``alg``, ``kid`` (the secret's id), ``typ``; claims ``optData``
(serialized JSON ``{"merchant", "userId"[, "sessionId"]}``, a string, not an
object), ``crt`` (the serialized Customer Rights Token, a string too), ``iat``,
``exp`` and a fresh ``jti``. The custom data (9.2) is standard base64 of
``{"userId", "sessionId", "merchant"}``. Both serialize compact JSON in the key
order castLabs' examples use, so the test vectors of 9.9 come out bit for bit.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt


def compact(doc: Any) -> str:
    """Compact JSON text, keys in the order given."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


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
    """The upfront authorization token (compact JWS).

    :param opt: the serialized ``optData`` (:func:`opt_data`).
    :param crt: the serialized Customer Rights Token.
    """
    claims: dict[str, Any] = {"optData": opt, "crt": crt, "iat": iat}
    if exp is not None:
        claims["exp"] = exp
    claims["jti"] = jti
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": key_id, "typ": "JWT"})
