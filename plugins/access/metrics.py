"""Prometheus metrics of the access rules (named like :mod:`proxy.metrics`)."""

from __future__ import annotations

from prometheus_client import Counter

ACCESS_DENIALS = Counter(
    "license_proxy_access_denials",
    "Requests an access rule refused, by rule and reason code.",
    ["rule", "reason"],
)
STATE_UNAVAILABLE = Counter(
    "license_proxy_state_unavailable",
    "Requests that met an unreachable state store, by what was decided (deny or allow).",
    ["decision"],
)
STATE_REFUNDS = Counter(
    "license_proxy_state_refunds",
    "Uses and sessions given back because the request failed after taking them, by outcome.",
    ["outcome"],
)
LIST_RELOADS = Counter(
    "license_proxy_access_list_reloads",
    "Reloads of access list files, by list and outcome (ok or error).",
    ["list", "outcome"],
)
