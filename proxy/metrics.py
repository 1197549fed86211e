"""Prometheus metrics, served at ``GET /metrics``.

Defined once per process (prometheus-client's default registry); every
pipeline in the process, including a reloaded one, counts into the same series.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "license_proxy_requests",
    "License and inspection requests answered, by transport, DRM and outcome.",
    ["transport", "drm", "outcome", "reason"],
)
REQUEST_SECONDS = Histogram(
    "license_proxy_request_seconds",
    "Wall time from request to answer, by transport.",
    ["transport"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
IN_FLIGHT = Gauge("license_proxy_in_flight", "Requests being answered right now.")
PLUGIN_ERRORS = Counter(
    "license_proxy_plugin_errors",
    "Unexpected exceptions raised by plugins (the request was refused, or the observer skipped).",
    ["plugin", "hook"],
)
BACKEND_CALLS = Counter(
    "license_proxy_backend_calls",
    "Calls to vendor backends, by backend and outcome (ok or a reason code).",
    ["backend", "outcome"],
)
LICENSES_ISSUED = Counter(
    "license_proxy_licenses_issued",
    "Licenses issued (dry runs excluded), by backend, vendor, DRM, policy and request type "
    "(new, renewal, release, service_certificate): what a vendor's bill is reconciled with.",
    ["backend", "vendor", "drm", "policy", "request_type"],
)
