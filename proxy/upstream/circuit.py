"""A consecutive-failure circuit breaker per backend, so a dead vendor is skipped at once."""

from __future__ import annotations

import logging
from enum import IntEnum

from prometheus_client import Gauge

from proxy.upstream.settings import CircuitSettings

log = logging.getLogger("proxy.upstream")

CIRCUIT_STATE = Gauge(
    "license_proxy_circuit_state",
    "Circuit breaker state per backend: 0 closed, 1 half-open, 2 open.",
    ["backend"],
    multiprocess_mode="livemax",  # with worker processes: the worst worker's breaker
)


class CircuitState(IntEnum):
    """A circuit breaker's state (the gauge's value)."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    """Consecutive-failure breaker: closed -> open -> half-open (one probe) -> closed or open."""

    def __init__(self, name: str, settings: CircuitSettings) -> None:
        self.name = name
        self.settings = settings
        self.state = CircuitState.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self._probing = False
        self._gauge = CIRCUIT_STATE.labels(name)
        self._gauge.set(0)

    def _set(self, state: CircuitState) -> None:
        if state is self.state:
            return  # every success closes the circuit: most calls change nothing
        log.warning("backend %s circuit %s", self.name, state.name.lower().replace("_", "-"))
        self.state = state
        self._gauge.set(int(state))

    def allow(self, now: float) -> bool:
        """True when a request may go out now (at most one while half-open)."""
        if not self.settings.enabled or self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN:
            if now - self.opened_at < self.settings.reset_timeout:
                return False
            self._set(CircuitState.HALF_OPEN)
        if self._probing:
            return False
        self._probing = True
        return True

    def success(self) -> None:
        """The backend answered (a license or a refusal): close the circuit."""
        self.failures = 0
        self._probing = False
        self._set(CircuitState.CLOSED)

    def failure(self, now: float) -> None:
        """An outage: open after ``failure_threshold`` in a row, or at once when half-open."""
        self.failures += 1
        self._probing = False
        if self.state is CircuitState.HALF_OPEN or self.failures >= self.settings.failure_threshold:
            self.opened_at = now
            self._set(CircuitState.OPEN)

    def abandon(self) -> None:
        """A request ended with no verdict (cancelled): free the probe slot."""
        self._probing = False
