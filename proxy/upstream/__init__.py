"""The core's side of every vendor call: the pooled client, its settings, the circuit breaker.

:mod:`proxy.upstream.client` sends what adapters build (timeouts, retries on safe
failures only, size caps, correlation id); :mod:`proxy.upstream.circuit` keeps a
failing backend from being called; :mod:`proxy.upstream.settings` holds the
``[backends.NAME]`` settings every translating adapter's settings extend.
"""

from proxy.upstream.circuit import CircuitBreaker, CircuitState
from proxy.upstream.client import OUTAGE_REASONS, BackendStats, UpstreamClient
from proxy.upstream.retry_after import retry_after_seconds
from proxy.upstream.settings import CORRELATION_HEADER, CircuitSettings, UpstreamSettings

__all__ = [
    "CORRELATION_HEADER",
    "OUTAGE_REASONS",
    "BackendStats",
    "CircuitBreaker",
    "CircuitSettings",
    "CircuitState",
    "UpstreamClient",
    "UpstreamSettings",
    "retry_after_seconds",
]
