"""Which policies match a request, and which one wins.

A policy is a candidate when every condition of its ``match`` holds. Among
candidates the highest ``priority`` wins, then the most specific match (more
conditions), then the one listed first. A token may name its policy (Azure's
``policy_name``), but only among the candidates its claims make.

Each policy's conditions are compiled once at start (glob patterns into
regular expressions, key ids into sets); a request costs one pass over the
policies. Reasons are only put into words when the request is traced.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from proxy import ProxyError, Reason
from proxy.model import DrmSystem, Principal, RequestContext
from proxy.policy import Policy

_MISSING = object()


def _same(value: Any, accepted: Any) -> bool:
    # 1 == True in Python; a claim of true must not satisfy a condition of 1.
    return value == accepted and type(value) is type(accepted)


def claim_matches(value: Any, condition: Any) -> bool:
    """True when a claim ``value`` satisfies a policy's claim ``condition``.

    A scalar condition must equal the claim (or be one element of a list
    claim); a list condition accepts any of its values; ``{present = true}``
    asks only that the claim exists (``false``: that it does not).
    """
    if isinstance(condition, dict):
        return (value is not None) == condition["present"]
    if value is None:
        return False
    accepted = condition if isinstance(condition, list) else [condition]
    values = value if isinstance(value, list) else [value]
    return any(_same(v, a) for v in values for a in accepted)


def _brief(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _typed(values: list[Any]) -> frozenset[tuple[type, Any]]:
    return frozenset((type(v), v) for v in values)


@dataclass(frozen=True, slots=True)
class ClaimTest:
    """One required claim of a policy's ``match``, compiled: accepted values are kept as
    a set of ``(type, value)`` pairs, so a test is a hash lookup per claim value."""

    name: str
    condition: Any
    accepted: frozenset[tuple[type, Any]] = frozenset()
    present: bool | None = None

    @classmethod
    def of(cls, name: str, condition: Any) -> ClaimTest:
        """Compile one condition."""
        if isinstance(condition, dict):
            return cls(name, condition, present=condition["present"])
        values = condition if isinstance(condition, list) else [condition]
        return cls(name, condition, accepted=_typed(values))

    def holds(self, claims: Mapping[str, Any]) -> bool:
        """True when the claims satisfy this condition (as :func:`claim_matches` says)."""
        value = claims.get(self.name)
        if self.present is not None:
            return (value is not None) is self.present
        if value is None:
            return False
        try:
            if isinstance(value, list):
                return any((type(v), v) in self.accepted for v in value)
            return (type(value), value) in self.accepted
        except TypeError:  # an unhashable claim value (an object) equals no condition
            return False

    def describe(self) -> str:
        """The condition in words: ``claim tier = 'gold'``."""
        condition = self.condition
        if isinstance(condition, dict):
            return f"claim {self.name} {'present' if condition['present'] else 'absent'}"
        if isinstance(condition, list):
            return f"claim {self.name} one of {_brief(condition)}"
        return f"claim {self.name} = {_brief(condition)}"

    def failure(self, claims: Mapping[str, Any]) -> str:
        """Why the claims do not satisfy this condition."""
        value = claims.get(self.name, _MISSING)
        if value is _MISSING or value is None:
            return f"claim {self.name} is missing (needs {self.describe()})"
        return f"claim {self.name} is {_brief(value)} (needs {self.describe()})"


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the election looks at, gathered once per request."""

    drm_system: DrmSystem | None
    content_id: str | None
    key_ids: frozenset[bytes]
    claims: Mapping[str, Any]

    @classmethod
    def of(cls, ctx: RequestContext, principal: Principal) -> RequestFacts:
        """The facts of one request."""
        return cls(ctx.drm_system, ctx.content_id, frozenset(ctx.key_ids), principal.claims)


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """A policy with its conditions compiled for fast matching.

    :ivar index: its position in ``[[policies]]`` (file order breaks ties).
    """

    index: int
    policy: Policy
    tests: tuple[ClaimTest, ...]
    drm_systems: frozenset[DrmSystem] | None
    content_pattern: re.Pattern[str] | None
    key_ids: frozenset[bytes] | None
    specificity: int

    @classmethod
    def compile(cls, index: int, policy: Policy) -> CompiledPolicy:
        """Compile one policy's ``match``."""
        match = policy.match
        return cls(
            index=index,
            policy=policy,
            tests=tuple(ClaimTest.of(n, c) for n, c in match.claims.items()),
            drm_systems=frozenset(match.drm_systems) if match.drm_systems is not None else None,
            content_pattern=(
                # one expression for every pattern; (?!) matches nothing, for an empty list
                re.compile("|".join(fnmatch.translate(p) for p in match.content_ids) or "(?!)")
                if match.content_ids is not None
                else None
            ),
            key_ids=frozenset(k.bytes for k in match.key_ids)
            if match.key_ids is not None
            else None,
            specificity=match.specificity,
        )

    @property
    def name(self) -> str:
        """The policy's name."""
        return self.policy.name

    @property
    def rank(self) -> tuple[int, int, int]:
        """Sort key: lower wins (higher priority, then more specific, then listed first)."""
        return (-self.policy.priority, -self.specificity, self.index)

    def matches(self, facts: RequestFacts) -> bool:
        """True when every condition holds for the request."""
        return self.failure(facts, explain=False) is None

    def failure(self, facts: RequestFacts, *, explain: bool = True) -> str | None:
        """None when every condition holds, else the first that does not (in words when
        ``explain``, else an empty string). The cheapest conditions are tested first."""
        for test in self.tests:
            if not test.holds(facts.claims):
                return test.failure(facts.claims) if explain else ""
        if self.drm_systems is not None and facts.drm_system not in self.drm_systems:
            if not explain:
                return ""
            wanted = ", ".join(sorted(d.value for d in self.drm_systems)) or "none"
            drm = facts.drm_system.value if facts.drm_system else "unknown"
            return f"DRM is {drm} (needs {wanted})"
        if self.key_ids is not None and (not facts.key_ids or not facts.key_ids <= self.key_ids):
            if not explain:
                return ""
            if not facts.key_ids:
                return "the request names no key id (needs some of match.key_ids)"
            return "a requested key id is not among match.key_ids"
        if self.content_pattern is not None:
            content_id = facts.content_id
            if content_id is None or self.content_pattern.match(content_id) is None:
                if not explain:
                    return ""
                patterns = _brief(self.policy.match.content_ids)
                if content_id is None:
                    return f"the request has no content id (needs one matching {patterns})"
                return f"content id {content_id!r} matches none of {patterns}"
        return None

    def describe_match(self) -> str:
        """What this policy's conditions are, in words."""
        parts = [t.describe() for t in self.tests]
        if self.drm_systems is not None:
            parts.append("DRM " + ", ".join(sorted(d.value for d in self.drm_systems)))
        if self.content_ids is not None:
            parts.append(f"content id like {_brief(self.content_ids)}")
        if self.key_ids is not None:
            parts.append(f"key ids among {len(self.key_ids)} listed")
        return "; ".join(parts) if parts else "no conditions"

    @property
    def content_ids(self) -> list[str] | None:
        """The content id patterns as configured."""
        return self.policy.match.content_ids


def compile_policies(policies: Sequence[Policy]) -> tuple[CompiledPolicy, ...]:
    """Compile every policy, keeping file order."""
    return tuple(CompiledPolicy.compile(i, p) for i, p in enumerate(policies))


def policy_matches(policy: Policy, ctx: RequestContext, principal: Principal) -> bool:
    """True when every condition of the policy's ``match`` holds for this request."""
    return CompiledPolicy.compile(0, policy).matches(RequestFacts.of(ctx, principal))


@dataclass(slots=True)
class Election:
    """The outcome of an election.

    :ivar winner: the elected policy, or None when no policy is a candidate.
    :ivar candidates: every policy whose conditions hold, best first.
    """

    winner: CompiledPolicy | None
    candidates: list[CompiledPolicy] = field(default_factory=list)


def _why_lost(loser: CompiledPolicy, winner: CompiledPolicy, named: bool) -> str:
    if named:
        return f"{loser.name!r} is a candidate too, but the token names {winner.name!r}"
    if loser.policy.priority != winner.policy.priority:
        return (
            f"{loser.name!r} lost: lower priority "
            f"({loser.policy.priority} < {winner.policy.priority})"
        )
    if loser.specificity != winner.specificity:
        return (
            f"{loser.name!r} lost: less specific "
            f"({loser.specificity} < {winner.specificity} conditions)"
        )
    return f"{loser.name!r} lost: listed after {winner.name!r}"


def elect(
    policies: Sequence[CompiledPolicy],
    facts: RequestFacts,
    *,
    name_claim: str = "",
    note: Callable[[str], None] | None = None,
) -> Election:
    """Elect a policy for the request described by ``facts``.

    :param name_claim: the claim by which a token may name its policy ("" for none).
    :param note: called with every reason in words (dry runs, ``explain``); when
        None, no reason is put into words.
    :raises ProxyError: ``NO_MATCHING_POLICY`` when the token names a policy
        that is not among its candidates.
    """
    explain = note is not None
    candidates: list[CompiledPolicy] = []
    for compiled in policies:
        why_not = compiled.failure(facts, explain=explain)
        if why_not is None:
            candidates.append(compiled)
            if note is not None:
                note(
                    f"{compiled.name!r} is a candidate ({compiled.describe_match()}; "
                    f"priority {compiled.policy.priority})"
                )
        elif note is not None:
            note(f"{compiled.name!r} is not a candidate: {why_not}")
    if len(candidates) > 1:
        candidates.sort(key=lambda c: c.rank)

    named = facts.claims.get(name_claim) if name_claim else None
    winner: CompiledPolicy | None
    if named is not None:
        winner = next((c for c in candidates if c.name == named), None)
        if winner is None:
            known = isinstance(named, str) and any(p.name == named for p in policies)
            detail = (
                f"the token names policy {named!r}, whose conditions its claims do not meet"
                if known
                else "the token names a policy that is not configured"
            )
            raise ProxyError(Reason.NO_MATCHING_POLICY, detail)
        if note is not None:
            note(f"elected {winner.name!r}: the token names it (claim {name_claim})")
    else:
        winner = candidates[0] if candidates else None
        if note is not None and winner is not None:
            note(
                f"elected {winner.name!r}: priority {winner.policy.priority}, "
                f"{winner.specificity} condition(s), policies[{winner.index}]"
            )
    if note is not None and winner is not None:
        for loser in candidates:
            if loser is not winner:
                note(_why_lost(loser, winner, named is not None))
    if note is not None and not candidates:
        note("no policy's conditions all hold")
    return Election(winner, candidates)
