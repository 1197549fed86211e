"""Reading claims and request facts the access rules share.

:func:`state_key` and :func:`slot_tag` (the key names of the state rules) are the kit's,
re-exported here for the rules that import them from this module.
"""

from __future__ import annotations

from typing import Any

from proxy import ProxyError, Reason, slot_tag, state_key
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


def as_list(value: Any) -> list[Any]:
    """A claim value as a list (a scalar is a list of one)."""
    return value if isinstance(value, list) else [value]


__all__ = [
    "MAX_ID_LENGTH",
    "as_list",
    "claim_text",
    "identity",
    "request_type",
    "slot_tag",
    "state_key",
]
