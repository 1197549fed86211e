"""The token plugin's Prometheus metrics (process-wide, like :mod:`proxy.metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

KEY_FETCHES = Counter(
    "license_proxy_token_key_fetches",
    "Fetches of issuers' remote key sets (discovery included), by issuer, what triggered "
    "them (start, schedule, unknown_kid) and outcome (ok, or why it failed).",
    ["issuer", "trigger", "outcome"],
)
KEYS_LOADED = Gauge(
    "license_proxy_token_keys",
    "Verification keys an issuer currently holds (configured and fetched).",
    ["issuer"],
)
KEYS_LAST_SUCCESS = Gauge(
    "license_proxy_token_key_fetch_last_success_timestamp_seconds",
    "When an issuer's remote key set was last fetched successfully (alert when it grows old).",
    ["issuer"],
)
KEY_FETCH_FAILURES = Gauge(
    "license_proxy_token_key_fetch_failures",
    "Fetches of an issuer's remote key set that failed in a row (0 after a success): "
    "above 0, the last good keys are in use and new signing keys can't be learned.",
    ["issuer"],
    multiprocess_mode="livemax",  # with worker processes: the worst worker
)
KEYS_NEXT_REFRESH = Gauge(
    "license_proxy_token_key_next_refresh_timestamp_seconds",
    "When an issuer's remote key set is fetched next on schedule (an unknown kid may "
    "fetch sooner).",
    ["issuer"],
    multiprocess_mode="livemax",
)
KEYS_SKIPPED = Counter(
    "license_proxy_token_keys_skipped",
    "Keys of a fetched key set that could not be used (broken, or of an unsupported type).",
    ["issuer"],
)
VERIFICATION_CACHE = Counter(
    "license_proxy_token_cache_lookups",
    "Token verifications answered from the verification cache (hit) or verified in full (miss).",
    ["result"],
)
CACHE_HIT = VERIFICATION_CACHE.labels("hit")
CACHE_MISS = VERIFICATION_CACHE.labels("miss")
