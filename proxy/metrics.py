"""Prometheus metrics, served at ``GET /metrics``.

Defined once per process (prometheus-client's default registry); every
pipeline in the process, including a reloaded one, counts into the same series.

With worker processes (``server.workers``) the supervisor gives every worker
one ``PROMETHEUS_MULTIPROC_DIR`` for the run: prometheus-client then keeps each
value in a file per process, and a scrape answered by any worker adds up the
whole host (:func:`exposition`). Gauges say how workers combine
(``multiprocess_mode``), and a gauge can't be computed at scrape time there.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

#: The environment variable that turns prometheus-client's multiprocess mode on.
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: True in a worker process of a supervisor: values live in files shared by the host.
MULTIPROCESS = bool(os.environ.get(MULTIPROC_DIR_ENV))

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
IN_FLIGHT = Gauge(
    "license_proxy_in_flight",
    "Requests being answered right now.",
    multiprocess_mode="livesum",  # with worker processes: the sum over the live ones
)
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


def exposition() -> tuple[bytes, str]:
    """The Prometheus text format and its content type: this process's metrics, or in
    multiprocess mode every worker's, added up (counters include workers that died)."""
    directory = os.environ.get(MULTIPROC_DIR_ENV)
    if directory:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
