"""``check-config`` warnings: policies that can never be elected, and rules that never apply.

A warning does not stop the proxy; it points at a configuration that almost
certainly does not do what its author meant.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

from proxy.model import DrmSystem
from proxy.policy import DEFAULT_TRACK, Policy, PolicyMatch

_WILDCARDS = frozenset("*?[")


def _values(condition: Any) -> set[tuple[type, Any]]:
    items = condition if isinstance(condition, list) else [condition]
    return {(type(v), v) for v in items}


def _claim_implies(narrow: Any, wide: Any) -> bool:
    """True when every claim value that meets ``narrow`` also meets ``wide``."""
    if isinstance(wide, dict):
        if wide["present"]:
            return not isinstance(narrow, dict) or narrow["present"]
        return isinstance(narrow, dict) and not narrow["present"]
    if isinstance(narrow, dict):
        return False
    narrow_values = _values(narrow)
    return bool(narrow_values) and narrow_values <= _values(wide)


def _pattern_covered(pattern: str, wide: list[str]) -> bool:
    if pattern in wide:
        return True
    return not (_WILDCARDS & set(pattern)) and any(fnmatch.fnmatchcase(pattern, w) for w in wide)


def covers(wide: PolicyMatch, narrow: PolicyMatch) -> bool:
    """True when ``wide`` holds for every request ``narrow`` holds for (as far as can be
    told without running requests: glob patterns are compared literally)."""
    for name, condition in wide.claims.items():
        if name not in narrow.claims or not _claim_implies(narrow.claims[name], condition):
            return False
    if wide.drm_systems is not None and (
        narrow.drm_systems is None or not set(narrow.drm_systems) <= set(wide.drm_systems)
    ):
        return False
    if wide.content_ids is not None and (
        narrow.content_ids is None
        or not all(_pattern_covered(p, wide.content_ids) for p in narrow.content_ids)
    ):
        return False
    return wide.key_ids is None or (
        narrow.key_ids is not None and set(narrow.key_ids) <= set(wide.key_ids)
    )


def _ranks_above(a: Policy, a_index: int, b: Policy, b_index: int) -> bool:
    key_a = (-a.priority, -a.match.specificity, a_index)
    key_b = (-b.priority, -b.match.specificity, b_index)
    return key_a < key_b


def _impossible(match: PolicyMatch) -> str | None:
    for name, condition in match.claims.items():
        if condition == []:
            return f"claims.{name}"
    for name in ("drm_systems", "content_ids", "key_ids"):
        if getattr(match, name) == []:
            return name
    return None


def policy_warnings(
    policies: Sequence[Policy],
    served: Mapping[str, frozenset[DrmSystem]],
    *,
    name_claim: str = "",
) -> list[tuple[str, str]]:
    """Warnings about ``policies`` as ``(key path, message)``.

    :param served: backend name -> the DRM systems its vendor serves (backends
        missing here are not judged).
    :param name_claim: the claim by which tokens name policies ("" when off).
    """
    warnings: list[tuple[str, str]] = []
    for i, policy in enumerate(policies):
        path = f"policies[{i}]"
        empty = _impossible(policy.match)
        if empty is not None:
            warnings.append(
                (
                    f"{path}.match.{empty}",
                    "an empty list matches nothing: this policy is never elected",
                )
            )
            continue
        shadow = next(
            (
                (j, other)
                for j, other in enumerate(policies)
                if j != i
                and _ranks_above(other, j, policy, i)
                and covers(other.match, policy.match)
            ),
            None,
        )
        if shadow is not None:
            j, other = shadow
            how = (
                f"; only a token naming it in its {name_claim!r} claim can elect it"
                if name_claim
                else ""
            )
            warnings.append(
                (
                    path,
                    f"policy {policy.name!r} can never win an election: policies[{j}] "
                    f"({other.name!r}) holds for every request it holds for and ranks above it{how}",
                )
            )
        warnings.extend(_drm_warnings(policy, path, served))
        warnings.extend(_rule_warnings(policy, path))
    return warnings


def _drm_warnings(
    policy: Policy, path: str, served: Mapping[str, frozenset[DrmSystem]]
) -> list[tuple[str, str]]:
    known = [served[b] for b in policy.backends if b in served]
    if not known or len(known) != len(policy.backends):
        return []
    serves = frozenset().union(*known)
    warnings = []
    if policy.match.drm_systems is not None:
        for k, drm in enumerate(policy.match.drm_systems):
            if drm not in serves:
                warnings.append(
                    (
                        f"{path}.match.drm_systems[{k}]",
                        f"no backend of policy {policy.name!r} serves {drm.value}: "
                        "requests it wins for that DRM fail with DRM_NOT_SUPPORTED",
                    )
                )
    for drm in policy.license_overrides:
        if drm not in serves:
            warnings.append(
                (
                    f"{path}.license_overrides.{drm.value}",
                    f"no backend of policy {policy.name!r} serves {drm.value}: "
                    "this override never applies",
                )
            )
    return warnings


def _rule_warnings(policy: Policy, path: str) -> list[tuple[str, str]]:
    warnings = []
    allowed = policy.allowed_track_types
    if allowed is not None:
        for track in policy.tracks:
            if track != DEFAULT_TRACK and track not in allowed:
                warnings.append(
                    (
                        f"{path}.tracks.{track}",
                        f"{track} is not in allowed_track_types: these rules never apply",
                    )
                )
    renewal = policy.license.renewal
    if renewal.enabled is False:
        set_fields = [
            n
            for n in type(renewal).model_fields
            if n != "enabled" and getattr(renewal, n) is not None
        ]
        if set_fields:
            warnings.append(
                (
                    f"{path}.license.renewal",
                    f"renewal is disabled, so {', '.join(set_fields)} will be ignored",
                )
            )
    return warnings
