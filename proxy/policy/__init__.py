"""The vendor-neutral policy: one vocabulary for license rules that every adapter renders.

A ``[[policies]]`` entry is a :class:`Policy` (:mod:`proxy.policy.model`); the
policy plugin elects one per request and hands the pipeline an
:class:`EffectivePolicy` (:mod:`proxy.policy.effective`): the policy after any
tightening, with each requested key id tied to its track type. The words rules
are made of (track types, HDCP, security levels) are in
:mod:`proxy.policy.vocabulary`.

Tightening lives in :mod:`proxy.policy.strictness`, so that adapters and plugins
share one notion of "stricter": :meth:`TrackRules.tightened_by` and
:meth:`LicenseSettings.tightened_by` apply a rule set that may only restrict (a
claim from a trusted issuer) and report what they ignored;
:meth:`TrackRules.most_restrictive` merges rule sets that all apply to one key.
:data:`STRICTNESS` says, field by field, which values are stricter.
"""

from proxy.policy.effective import EffectivePolicy
from proxy.policy.model import (
    ClaimCondition,
    LicenseSettings,
    PlayReadyOutputProtection,
    Policy,
    PolicyAccess,
    PolicyMatch,
    RenewalSettings,
    TrackRules,
)
from proxy.policy.strictness import (
    DURATION,
    EARLIER,
    FIXED,
    LATER,
    LEVEL,
    PERMISSION,
    RANKED,
    RESTRICTION,
    STRICTNESS,
    AppliedChange,
    IgnoredChange,
    Strictness,
    Tightened,
)
from proxy.policy.vocabulary import (
    DEFAULT_TRACK,
    CgmsA,
    FairPlayHdcp,
    Hdcp,
    PlayReadySecurityLevel,
    RankedEnum,
    TrackType,
    WidevineSecurityLevel,
)

__all__ = [
    "DEFAULT_TRACK",
    "DURATION",
    "EARLIER",
    "FIXED",
    "LATER",
    "LEVEL",
    "PERMISSION",
    "RANKED",
    "RESTRICTION",
    "STRICTNESS",
    "AppliedChange",
    "CgmsA",
    "ClaimCondition",
    "EffectivePolicy",
    "FairPlayHdcp",
    "Hdcp",
    "IgnoredChange",
    "LicenseSettings",
    "PlayReadyOutputProtection",
    "PlayReadySecurityLevel",
    "Policy",
    "PolicyAccess",
    "PolicyMatch",
    "RankedEnum",
    "RenewalSettings",
    "Strictness",
    "Tightened",
    "TrackRules",
    "TrackType",
    "WidevineSecurityLevel",
]
