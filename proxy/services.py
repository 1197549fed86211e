"""Shared services of one pipeline: the clock, the upstream HTTP client, the state store,
the decision log.

The core owns all three: it builds them from the config before any plugin
configures, starts them with the pipeline and closes them after it. Plugins
reach them as ``config.services`` in ``proxy_configure`` and as
``ctx.services`` per request. Tests swap the clock for one they drive.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from proxy.audit import AuditLog
from proxy.clock import Clock
from proxy.state import MemoryStore, StateStore
from proxy.statusboard import StatusBoard
from proxy.upstream import UpstreamClient


class SessionTracking:
    """Whether license sessions are recorded, and how long a record outlives its last
    request (``services.sessions``). Plugins turn it on in ``proxy_configure``."""

    def __init__(self) -> None:
        self.enabled = False
        self.hold = 0.0

    def track(self, hold: float = 0.0) -> None:
        """Record license sessions, each kept at least ``hold`` seconds after its last request."""
        self.enabled = True
        self.hold = max(self.hold, hold)


@dataclass
class Services:
    """What every plugin of a pipeline shares.

    :ivar clock: the time source; every time-based rule reads it.
    :ivar upstream: the pooled HTTP client the core uses to call vendors
        (adapters never call it: they translate, the core sends).
    :ivar state: the shared state store of the state rules, as ``[access.state]``
        configures it (this process's memory unless a Redis URL is given).
    :ivar audit: the decision log, as ``[audit]`` configures it (one that writes
        nothing until the builder replaces it).
    :ivar status: what plugins expose to the admin API (key-source states, a subject's
        sessions), registered in ``proxy_configure``.
    :ivar sessions: whether license sessions are recorded so that renewals are
        recognised (:mod:`proxy.sessions`), turned on by plugins in ``proxy_configure``.
    """

    clock: Clock = field(default_factory=Clock)
    upstream: UpstreamClient = field(default_factory=UpstreamClient)
    state: StateStore = field(default_factory=MemoryStore)
    audit: AuditLog = field(default_factory=AuditLog)
    status: StatusBoard = field(default_factory=StatusBoard)
    sessions: SessionTracking = field(default_factory=SessionTracking)


__all__ = ["Clock", "Services", "SessionTracking"]
