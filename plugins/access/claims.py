"""Reading claims and request facts the access rules share."""

from __future__ import annotations

import hashlib
from typing import Any

from proxy import ProxyError, Reason
from proxy.model import Principal, RequestContext, RequestType

#: Longest identifier (subject, session, device id, jti) the rules accept from a claim.
MAX_ID_LENGTH = 512


def request_type(ctx: RequestContext) -> RequestType:
    """What the challenge asks for (a new license when no inspector said otherwise)."""
    return ctx.challenge.request_type if ctx.challenge is not None else RequestType.NEW


def claim_text(principal: Principal, name: str) -> str | None:
    """A claim as an identifier: a non-empty string or an integer, else None."""
    value = principal.claims.get(name)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def identity(principal: Principal, claim: str | None, rule: str) -> str:
    """Whom a rule counts: ``claim`` when configured, else the subject.

    Raises TOKEN_CLAIM_MISSING when the token doesn't carry it: a limit per
    subject can't be kept for a token that names none.
    """
    if claim is None:
        value = principal.subject.strip() if principal.subject else None
        name = "sub"
    else:
        value = claim_text(principal, claim)
        name = claim
    if not value:
        raise ProxyError(
            Reason.TOKEN_CLAIM_MISSING, f"the {rule} rule needs the token's {name} claim"
        )
    if len(value) > MAX_ID_LENGTH:
        raise ProxyError(Reason.TOKEN_MALFORMED, f"the token's {name} claim is too long")
    return value


def state_key(kind: str, *parts: str, tag: str = "") -> str:
    """A fixed-size store key for ``parts``: no user data in key names, no unbounded keys.

    ``tag`` (from :func:`slot_tag`) goes first, so that on Redis Cluster every key with
    the same tag lands in the same hash slot and one script settles them together.
    """
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()
    return f"{tag}{kind}:{digest}"


def slot_tag(subject: str) -> str:
    """The hash tag of a subject's keys (``{16 hex digits}``): its token uses, sessions and
    rate bucket share one cluster slot. A digest, so no user data shows in key names."""
    return "{" + hashlib.blake2b(subject.encode(), digest_size=8).hexdigest() + "}"


def as_list(value: Any) -> list[Any]:
    """A claim value as a list (a scalar is a list of one)."""
    return value if isinstance(value, list) else [value]
