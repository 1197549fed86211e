"""Token verification in the order DESIGN.md fixes: size and shape; issuer by the unverified
``iss``; key by ``kid``/``alg``; signature; ``exp``, then ``nbf`` and ``iat``; audience; required
claims and values. So an expired token with a good signature is TOKEN_EXPIRED whatever else is
wrong with it.

The segments of the compact serialization are decoded with joserfc's base64url decoder, which
is strict (nothing outside the alphabet, no padding, no non-canonical trailing bits) and runs
in C; PyJWT 2.14+ makes the same checks character by character in Python, several times
slower on a 1 KiB token (bench/token.py and bench/RESULTS.md hold the figures). Signatures are
checked with PyJWT's algorithm implementations against keys prepared once
(:mod:`plugins.token.keys`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from joserfc.util import urlsafe_b64decode

from plugins.token import metrics
from plugins.token.cache import CachedVerification, TokenTimes, VerificationCache
from plugins.token.config import SUPPORTED_ALGORITHMS, IssuerConfig
from plugins.token.issuer import Clock, Issuer
from plugins.token.keys import VerificationKey
from proxy import ProxyError, Reason
from proxy.model import Principal


@dataclass(slots=True)
class ParsedToken:
    """A compact JWS taken apart, nothing verified yet."""

    header: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes


def _malformed(detail: str) -> ProxyError:
    return ProxyError(Reason.TOKEN_MALFORMED, detail)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


#: Strict JSON: NaN and Infinity (which Python's json accepts) are refused.
_JSON = json.JSONDecoder(parse_constant=_no_constants)


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _malformed(f"the {name} claim is not a finite number")
    return float(value)


def _contains(value: Any, accepted: Iterable[str]) -> bool:
    if isinstance(value, list):
        return any(isinstance(v, str) and v in accepted for v in value)
    return isinstance(value, str) and value in accepted


class TokenVerifier:
    """Verifies compact JWS tokens against the configured issuers.

    :param issuers: the accepted issuers.
    :param clock: the time source for every time decision.
    :param max_token_bytes: larger tokens are TOKEN_MALFORMED before any parsing.
    :param cache_size: verified tokens remembered (0: none).
    """

    def __init__(
        self,
        issuers: list[Issuer],
        *,
        clock: Clock,
        max_token_bytes: int,
        cache_size: int = 4096,
    ) -> None:
        self.issuers = {i.name: i for i in issuers}
        self._only = issuers[0] if len(issuers) == 1 else None
        self.clock = clock
        self.max_token_bytes = max_token_bytes
        self.cache = VerificationCache(cache_size)
        for issuer in issuers:
            issuer.on_keys_changed(self.cache.drop_issuer)

    async def verify(self, token: str) -> Principal:
        """The principal ``token`` speaks for, or ProxyError with a TOKEN_* reason."""
        if len(token) > self.max_token_bytes:
            raise _malformed("the token is too large")
        principal = self._from_cache(token)
        if principal is not None:
            return principal
        metrics.CACHE_MISS.inc()
        claims, issuer, key, version = await self._signed_claims(token)
        times = self._times(claims, issuer.config)
        self._check_claims(claims, issuer)
        principal = self._principal(token, claims, issuer, key)
        if issuer.keys.version == version:
            self.cache.put(token, CachedVerification(principal, issuer, version, times))
        return principal

    async def verify_past_expiry(self, token: str) -> tuple[Principal, TokenTimes]:
        """Every check of :meth:`verify` but ``exp`` (shape, issuer, key, signature, ``nbf``,
        ``iat``, lifetime, audience, required claims), for a renewal after expiry: the
        caller judges ``exp`` against the issuer's ``renewal_grace``. Never cached."""
        if len(token) > self.max_token_bytes:
            raise _malformed("the token is too large")
        claims, issuer, key, _ = await self._signed_claims(token)
        exp = _number(claims, "exp")
        if exp is None:
            raise ProxyError(Reason.TOKEN_CLAIM_MISSING, "the token has no exp claim")
        times = TokenTimes(exp, _number(claims, "nbf"), _number(claims, "iat"))
        self._check_times(times, issuer.config, expiry=False)
        self._check_claims(claims, issuer)
        return self._principal(token, claims, issuer, key), times

    async def _signed_claims(
        self, token: str
    ) -> tuple[dict[str, Any], Issuer, VerificationKey, int]:
        """The claim set of ``token`` once its issuer is known and its signature checked
        (refreshing the issuer's keys for an unknown ``kid``), with the key that verified it
        and the issuer's key-set version read before the check."""
        parsed, alg, kid, claims, issuer = self._read(token)
        version = issuer.keys.version
        keys = issuer.keys.select(kid, alg)
        if keys is None:
            keys = await self._keys_after_refresh(issuer, kid, alg)
        key = self._verify_signature(parsed, alg, keys)
        if not isinstance(claims, dict):
            raise _malformed("the token's payload is not a claim set")
        return claims, issuer, key, version

    @staticmethod
    def _principal(
        token: str, claims: dict[str, Any], issuer: Issuer, key: VerificationKey
    ) -> Principal:
        subject = claims.get("sub")
        return Principal(
            subject=subject if isinstance(subject, str) else None,
            issuer=issuer.name,
            claims=claims,
            key_id=key.label,
            leeway=issuer.config.leeway,
            trusts_policy_claims=issuer.config.trust_policy_claims,
            token=token,
            renewal_grace=issuer.config.renewal_grace,
        )

    def _from_cache(self, token: str) -> Principal | None:
        """A cached principal for ``token`` once the time checks pass again; None when the
        token is not cached, or was verified with a key set that has since changed."""
        entry = self.cache.get(token)
        if entry is None:
            return None
        if entry.key_version != entry.issuer.keys.version:
            self.cache.discard(token)
            return None
        try:
            self._check_times(entry.times, entry.issuer.config)
        except ProxyError:
            self.cache.discard(token)
            raise
        metrics.CACHE_HIT.inc()
        return entry.principal

    def _read(self, token: str) -> tuple[ParsedToken, str, str | None, Any, Issuer]:
        """Shape, algorithm, ``kid``, claims and issuer, nothing verified yet."""
        parsed = self.parse(token)
        header = parsed.header
        alg = header.get("alg")
        if alg is None:
            raise _malformed("the token's header has no alg")
        if not isinstance(alg, str) or alg not in SUPPORTED_ALGORITHMS:
            # "none" among them: an unsigned token is never accepted.
            raise ProxyError(
                Reason.TOKEN_ALGORITHM_REJECTED, "the token's algorithm is not accepted"
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _malformed("the token's kid is not a string")
        claims = self._claims(parsed.payload)
        issuer = self._issuer(claims)
        if alg not in issuer.algorithms:
            raise ProxyError(
                Reason.TOKEN_ALGORITHM_REJECTED, f"algorithm {alg} is not accepted for this issuer"
            )
        return parsed, alg, kid, claims, issuer

    @staticmethod
    def parse(token: str) -> ParsedToken:
        """Take a compact JWS apart: three segments of strict base64url, a UTF-8 JSON object
        header; TOKEN_MALFORMED when it is not one."""
        try:
            raw = token.encode("ascii")
        except UnicodeEncodeError:
            raise _malformed("the token is not a compact JWS") from None
        segments = raw.split(b".")
        if len(segments) != 3:
            raise _malformed("the token is not a compact JWS")
        header_segment, payload_segment, signature_segment = segments
        try:
            header = _JSON.decode(urlsafe_b64decode(header_segment).decode("utf-8"))
            payload = urlsafe_b64decode(payload_segment)
            signature = urlsafe_b64decode(signature_segment)
        except (ValueError, TypeError, RecursionError):
            # binascii.Error and UnicodeDecodeError are ValueErrors.
            raise _malformed("the token is not a compact JWS") from None
        if not isinstance(header, dict):
            raise _malformed("the token's header is not a JSON object")
        if "crit" in header or "b64" in header:
            # No JWS extension is understood here (RFC 7515 4.1.11, RFC 7797).
            raise _malformed("the token uses a JWS extension this proxy does not support")
        return ParsedToken(header, payload, raw[: raw.rindex(b".")], signature)

    @staticmethod
    def _claims(payload: bytes) -> Any:
        try:
            return _JSON.decode(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            # Not a claim set; the signature is still checked first, so a forged
            # token reads as forged rather than as malformed.
            return None

    def _issuer(self, claims: Any) -> Issuer:
        if not isinstance(claims, dict):
            if self._only is not None:
                return self._only
            raise _malformed("the token's payload is not a claim set")
        iss = claims.get("iss")
        if iss is None:
            if self._only is not None:
                return self._only
            raise ProxyError(Reason.TOKEN_ISSUER_MISMATCH, "the token names no issuer")
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise ProxyError(Reason.TOKEN_ISSUER_MISMATCH, "the token's issuer is not accepted")
        return issuer

    @staticmethod
    async def _keys_after_refresh(
        issuer: Issuer, kid: str | None, alg: str
    ) -> list[VerificationKey]:
        """The set lacks the token's key: fetch (throttled, shared), look again, then fall back
        to the keys configured without id; KEY_SOURCE_UNAVAILABLE when none fits and the
        issuer's key source has never been reached."""
        refresher = issuer.refresher
        if refresher is not None and await refresher.refresh_for_unknown_kid():
            keys = issuer.keys.select(kid, alg)
            if keys is not None:
                return keys
        try:
            return issuer.keys.select_anonymous(alg)
        except ProxyError:
            if refresher is None or refresher.ever_loaded:
                raise
        # The key source has never answered: the token may well be good, so say so, retryably.
        raise ProxyError(
            Reason.KEY_SOURCE_UNAVAILABLE,
            "the issuer's signing keys could not be fetched yet",
            retry_after=max(1.0, refresher.next_refresh_in()),
        )

    @staticmethod
    def _verify_signature(
        parsed: ParsedToken, alg: str, keys: list[VerificationKey]
    ) -> VerificationKey:
        for key in keys:
            if key.verify(alg, parsed.signing_input, parsed.signature):
                return key
        raise ProxyError(Reason.TOKEN_SIGNATURE_INVALID, "the token's signature does not verify")

    def _times(self, claims: dict[str, Any], config: IssuerConfig) -> TokenTimes:
        """Read and check the time claims in order: ``exp``, then ``nbf`` and ``iat``."""
        exp = _number(claims, "exp")
        if exp is None:
            raise ProxyError(Reason.TOKEN_CLAIM_MISSING, "the token has no exp claim")
        if exp <= self.clock.time() - config.leeway:
            raise ProxyError(Reason.TOKEN_EXPIRED, "the token has expired")
        times = TokenTimes(exp, _number(claims, "nbf"), _number(claims, "iat"))
        self._check_times(times, config)
        return times

    def _check_times(self, times: TokenTimes, config: IssuerConfig, *, expiry: bool = True) -> None:
        """The checks that depend on the time: run on every request, cached or not
        (``expiry=False``: all but ``exp``)."""
        now = self.clock.time()
        leeway = config.leeway
        if expiry and times.exp <= now - leeway:
            raise ProxyError(Reason.TOKEN_EXPIRED, "the token has expired")
        if times.nbf is not None and times.nbf > now + leeway:
            raise ProxyError(Reason.TOKEN_NOT_YET_VALID, "the token is not valid yet")
        if times.iat is not None and times.iat > now + leeway:
            raise ProxyError(Reason.TOKEN_NOT_YET_VALID, "the token was issued in the future")
        if config.max_lifetime is not None:
            lifetime = times.exp - (times.iat if times.iat is not None else now)
            if lifetime > config.max_lifetime + leeway:
                raise ProxyError(Reason.TOKEN_EXPIRED, "the token's lifetime exceeds the maximum")

    @staticmethod
    def _check_claims(claims: dict[str, Any], issuer: Issuer) -> None:
        config = issuer.config
        aud = claims.get("aud")
        if aud is None or not _contains(aud, issuer.audiences):
            raise ProxyError(Reason.TOKEN_AUDIENCE_MISMATCH, "the token's audience is not accepted")
        for name in config.required_claims:
            if claims.get(name) is None:
                raise ProxyError(Reason.TOKEN_CLAIM_MISSING, f"the token has no {name} claim")
        for name in config.claim_values:
            if claims.get(name) is None:
                raise ProxyError(Reason.TOKEN_CLAIM_MISSING, f"the token has no {name} claim")
            if not issuer.claim_value_matches(name, claims[name]):
                raise ProxyError(
                    Reason.TOKEN_CLAIM_MISSING, f"the token's {name} claim has no accepted value"
                )


__all__ = ["Issuer", "ParsedToken", "TokenTimes", "TokenVerifier"]
