"""``[access.state]``: which store the state rules share, validated once by the core."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator, model_validator

from proxy.fields import Duration, StrictModel
from proxy.secrets import BASE_DIR_CONTEXT_KEY, SecretRef, resolve_secret
from proxy.state.address import ConnectOptions, StoreMode, parse_store_url
from proxy.state.cluster_store import ClusterStore
from proxy.state.memory import MemoryStore
from proxy.state.redis_store import RedisStore, ScriptStore
from proxy.state.sentinel_store import SentinelStore
from proxy.state.store import StateStore

log = logging.getLogger("proxy.state")


class StateTls(StrictModel):
    """``[access.state.tls]``: the files a ``rediss`` store URL connects with."""

    ca: str | None = None
    """CA bundle that signed the servers' certificates (``file:PATH``; default: the system's)."""
    cert: str | None = None
    """Client certificate, for servers that ask for one (``file:PATH``)."""
    key: str | None = None
    """The client certificate's private key (``file:PATH``)."""
    check_hostname: bool = True
    """Verify that a server's certificate names the host connected to."""

    @field_validator("ca", "cert", "key")
    @classmethod
    def _readable_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        path = Path(value.removeprefix("file:")).expanduser()
        base_dir = (info.context or {}).get(BASE_DIR_CONTEXT_KEY)
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        if not path.is_file():
            raise ValueError(f"cannot read {value}")
        return str(path)

    @model_validator(mode="after")
    def _key_with_cert(self) -> StateTls:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together")
        return self


class StateSettings(StrictModel):
    """``[access.state]``: where the replay, concurrency and rate counters live."""

    store: str = "memory"
    """``memory`` (this process; the default) or a Redis URL: ``redis://host:6379/0``
    (``rediss://`` for TLS, ``unix:///path``), ``redis+cluster://host:port,host:port``
    (cluster seed nodes), ``redis+sentinel://host:port,host:port/SERVICE`` (sentinels and
    the master's name); or ``env:NAME`` / ``file:PATH`` holding one."""
    username: SecretRef | None = None
    """The ACL user, inline or by reference (overrides one in the URL)."""
    password: SecretRef | None = None
    """The password by reference, to keep it out of the URL."""
    sentinel_password: SecretRef | None = None
    """The sentinels' own password (``requirepass`` in sentinel.conf), by reference."""
    tls: StateTls | None = None
    """CA and client certificate for a ``rediss`` URL."""
    key_prefix: str = Field(default="license-proxy:", max_length=100)
    """Prepended to every key, so deployments can share one Redis."""
    timeout: Duration = 0.25
    """Seconds one state call may take in all (connecting, retrying, following a failover)
    before it counts as unavailable."""
    replica_acks: int = Field(default=0, ge=0, le=16)
    """Single and Sentinel stores: after each write, wait (``WAIT``, in the same round trip)
    until this many replicas hold it, so a failover loses no decision the proxy acted on.
    0 (the default) answers as soon as the master wrote: a failover may then lose the
    writes its replica had not received yet (docs/access.md, Failover)."""
    replica_ack_timeout: Duration = 0.05
    """The longest wait for those replicas; a write still unconfirmed then is counted
    (``license_proxy_state_unreplicated_total``) and the decision stands."""

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str, info: ValidationInfo) -> str:
        if value.startswith(("env:", "file:")):
            base_dir = (info.context or {}).get(BASE_DIR_CONTEXT_KEY)
            value = resolve_secret(value, base_dir).text()
        if value == "memory":
            return value
        parse_store_url(value)  # raises with a message that never repeats the value
        return value

    @field_validator("key_prefix")
    @classmethod
    def _no_hash_tag(cls, value: str) -> str:
        if "{" in value or "}" in value:
            raise ValueError(
                "must not contain { or }: the hash tags that place keys in cluster slots follow it"
            )
        return value

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be more than 0")
        return value

    @model_validator(mode="after")
    def _acks_fit(self) -> StateSettings:
        if self.replica_acks and self.replica_ack_timeout >= self.timeout:
            raise ValueError(
                "replica_ack_timeout must be shorter than timeout, which bounds the whole call"
            )
        if self.replica_acks and (
            self.store == "memory" or parse_store_url(self.store).mode is StoreMode.CLUSTER
        ):
            raise ValueError(
                "replica_acks applies to single and Sentinel Redis stores (a cluster routes "
                "each slot to its own master; see docs/access.md)"
            )
        return self

    @model_validator(mode="after")
    def _tls_needs_rediss(self) -> StateSettings:
        if self.tls is not None and (self.store == "memory" or not parse_store_url(self.store).tls):
            raise ValueError(
                "tls applies to rediss://, rediss+cluster:// and rediss+sentinel:// stores"
            )
        return self

    @property
    def mode(self) -> StoreMode:
        """memory, single, cluster or sentinel: what ``store`` names."""
        return StoreMode.MEMORY if self.store == "memory" else parse_store_url(self.store).mode

    def connect_options(self) -> ConnectOptions:
        """Authentication and TLS for the Redis client."""
        tls = self.tls or StateTls()
        return ConnectOptions(
            username=self.username.text() if self.username is not None else None,
            password=self.password.text() if self.password is not None else None,
            sentinel_password=(
                self.sentinel_password.text() if self.sentinel_password is not None else None
            ),
            ca_file=tls.ca,
            cert_file=tls.cert,
            key_file=tls.key,
            check_hostname=tls.check_hostname,
        )


_STORES: dict[StoreMode, type[ScriptStore]] = {
    StoreMode.SINGLE: RedisStore,
    StoreMode.CLUSTER: ClusterStore,
    StoreMode.SENTINEL: SentinelStore,
}


def open_store(
    url: str,
    *,
    prefix: str = "",
    timeout: float = 0.25,
    options: ConnectOptions | None = None,
    replica_acks: int = 0,
    replica_ack_timeout: float = 0.05,
) -> StateStore:
    """The store a ``[access.state] store`` value names: ``memory`` or a Redis URL of any mode."""
    if url == "memory":
        return MemoryStore.shared(prefix)
    store_class = _STORES[parse_store_url(url).mode]
    store = store_class(url, prefix=prefix, timeout=timeout, options=options)
    store.replica_acks = replica_acks
    store.replica_ack_timeout = replica_ack_timeout
    return store


def store_from_settings(settings: StateSettings) -> StateStore:
    """The store ``[access.state]`` configures."""
    return open_store(
        settings.store,
        prefix=settings.key_prefix,
        timeout=settings.timeout,
        options=settings.connect_options(),
        replica_acks=settings.replica_acks,
        replica_ack_timeout=settings.replica_ack_timeout,
    )


def store_lifetime(store: StateStore) -> Callable[[], AsyncIterator[None]]:
    """A cleanup context that starts ``store`` with the pipeline and closes it after."""

    async def lifetime() -> AsyncIterator[None]:
        await store.start()
        if isinstance(store, ScriptStore) and not await store.ping():
            log.warning(
                "state store %s is unreachable; state rules answer as configured until it is back",
                store.describe(),
            )
        try:
            yield
        finally:
            await store.close()

    return lifetime
