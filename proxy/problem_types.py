"""Problem types for license errors: the DASH-IF ones, and the user-facing text per reason.

DASH-IF's interoperable license request model (Guidelines-Security, "Problem
signaling and handling") names two problem types a player may act on without knowing
the license server:

- ``insufficient-proof-of-authorization``: the token is missing, expired, spent or
  otherwise unusable; the player should get a new one and retry;
- ``not-authorized``: the user may not have these keys (entitlement, region, device);
  the ``detail`` is for the user, and an ``href`` with ``hrefTitle`` may say where to
  fix it.

Every other reason keeps ``about:blank``. ``[server.problems.REASON]`` overrides the
type, title and detail, and adds the link, per reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from proxy.errors import Reason
from proxy.fields import StrictModel

DASHIF_PROBLEMS = "https://dashif.org/drm-problems/"
NOT_AUTHORIZED = DASHIF_PROBLEMS + "not-authorized"
INSUFFICIENT_PROOF = DASHIF_PROBLEMS + "insufficient-proof-of-authorization"
#: DASH-IF gives both types this title.
DASHIF_TITLE = "Not authorized"

_PROOF_REASONS = (
    Reason.TOKEN_MISSING,
    Reason.TOKEN_MALFORMED,
    Reason.TOKEN_SIGNATURE_INVALID,
    Reason.TOKEN_EXPIRED,
    Reason.TOKEN_NOT_YET_VALID,
    Reason.TOKEN_ISSUER_MISMATCH,
    Reason.TOKEN_AUDIENCE_MISMATCH,
    Reason.TOKEN_ALGORITHM_REJECTED,
    Reason.TOKEN_KEY_UNKNOWN,
    Reason.TOKEN_CLAIM_MISSING,
    Reason.TOKEN_REPLAYED,
)
_NOT_AUTHORIZED_REASONS = (
    Reason.IP_NOT_ALLOWED,
    Reason.DEVICE_NOT_ALLOWED,
    Reason.ORIGIN_NOT_ALLOWED,
    Reason.NOT_ENTITLED,
    Reason.NO_MATCHING_POLICY,
)

#: The problem type of each reason when the config names none.
DEFAULT_TYPES: dict[Reason, str] = {
    **{reason: INSUFFICIENT_PROOF for reason in _PROOF_REASONS},
    **{reason: NOT_AUTHORIZED for reason in _NOT_AUTHORIZED_REASONS},
}


def _absolute_uri(value: str) -> str:
    if value == "about:blank":
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http(s) URI or about:blank")
    return value


class ProblemText(StrictModel):
    """``[server.problems.REASON]``: what a player shows its user for one reason."""

    type: str | None = None
    """The problem type URI (default: the DASH-IF type of the reason, else ``about:blank``)."""
    title: str | None = Field(default=None, min_length=1, max_length=200)
    """A short title (default: DASH-IF's for its types, else the reason's own)."""
    detail: str | None = Field(default=None, min_length=1, max_length=1000)
    """A sentence for the user; the proxy's own sentence moves to ``proxy_detail``."""
    href: str | None = None
    """Where the user can fix it (DASH-IF ``href``); needs ``href_title``."""
    href_title: str | None = Field(default=None, min_length=1, max_length=200)
    """The link's title (DASH-IF ``hrefTitle``), e.g. "Subscribe"."""

    @field_validator("type", "href")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        return None if value is None else _absolute_uri(value)

    @model_validator(mode="after")
    def _link_has_title(self) -> ProblemText:
        if (self.href is None) != (self.href_title is None):
            raise ValueError("href and href_title go together (DASH-IF requires the title)")
        return self


@dataclass(frozen=True, slots=True)
class ProblemFields:
    """The members of one problem+json answer that depend on the reason and the config."""

    type: str
    title: str
    detail: str
    proxy_detail: str | None = None
    href: str | None = None
    href_title: str | None = None


def problem_fields(
    reason: Reason, detail: str, texts: Mapping[Reason, ProblemText] | None = None
) -> ProblemFields:
    """The type, title, detail and link for ``reason``, with the configured text applied.

    :param detail: the proxy's own sentence; it stays ``detail`` unless a user-facing
        one is configured, and is then kept as ``proxy_detail``.
    """
    configured = (texts or {}).get(reason)
    kind = DEFAULT_TYPES.get(reason, "about:blank")
    if configured is None:
        return ProblemFields(kind, _title(kind, reason), detail)
    kind = configured.type or kind
    return ProblemFields(
        type=kind,
        title=configured.title or _title(kind, reason),
        detail=configured.detail or detail,
        proxy_detail=detail if configured.detail else None,
        href=configured.href,
        href_title=configured.href_title,
    )


def _title(kind: str, reason: Reason) -> str:
    return DASHIF_TITLE if kind.startswith(DASHIF_PROBLEMS) else reason.title


__all__ = [
    "DASHIF_TITLE",
    "DEFAULT_TYPES",
    "INSUFFICIENT_PROOF",
    "NOT_AUTHORIZED",
    "ProblemFields",
    "ProblemText",
    "problem_fields",
]
