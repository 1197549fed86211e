"""``[access.state]``: which store the state rules share, validated once by the core."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator

from proxy.fields import Duration, StrictModel
from proxy.secrets import BASE_DIR_CONTEXT_KEY, SecretRef, resolve_secret
from proxy.state.memory import MemoryStore
from proxy.state.redis_store import RedisStore
from proxy.state.store import StateStore

log = logging.getLogger("proxy.state")

_SCHEMES = ("redis", "rediss", "unix")


class StateSettings(StrictModel):
    """``[access.state]``: where the replay, concurrency and rate counters live."""

    store: str = "memory"
    """``memory`` (this process; the default) or a Redis URL (``redis://host:6379/0``,
    ``rediss://`` for TLS, ``unix:///path``), or ``env:NAME`` / ``file:PATH`` holding one."""
    password: SecretRef | None = None
    """The Redis password by reference, to keep it out of the URL."""
    key_prefix: str = Field(default="license-proxy:", max_length=100)
    """Prepended to every key, so deployments can share one Redis."""
    timeout: Duration = 0.25
    """Seconds to connect to Redis and to wait for an answer before it counts as unavailable."""

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str, info: ValidationInfo) -> str:
        if value.startswith(("env:", "file:")):
            base_dir = (info.context or {}).get(BASE_DIR_CONTEXT_KEY)
            value = resolve_secret(value, base_dir).text()
        if value == "memory":
            return value
        try:
            scheme = urlsplit(value).scheme
        except ValueError:
            scheme = ""
        if scheme not in _SCHEMES:
            # Never echo the value: it may hold a password.
            raise ValueError("must be 'memory' or a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be more than 0")
        return value


def open_store(
    url: str, *, prefix: str = "", password: str | None = None, timeout: float = 0.25
) -> StateStore:
    """The store a ``[access.state] store`` value names: ``memory`` or a Redis URL."""
    if url == "memory":
        return MemoryStore.shared(prefix)
    return RedisStore(url, prefix=prefix, password=password, timeout=timeout)


def store_from_settings(settings: StateSettings) -> StateStore:
    """The store ``[access.state]`` configures."""
    password = settings.password.text() if settings.password is not None else None
    return open_store(
        settings.store, prefix=settings.key_prefix, password=password, timeout=settings.timeout
    )


def store_lifetime(store: StateStore) -> Callable[[], AsyncIterator[None]]:
    """A cleanup context that starts ``store`` with the pipeline and closes it after."""

    async def lifetime() -> AsyncIterator[None]:
        await store.start()
        if isinstance(store, RedisStore) and not await store.ping():
            log.warning(
                "state store %s is unreachable; state rules answer as configured until it is back",
                store.describe(),
            )
        try:
            yield
        finally:
            await store.close()

    return lifetime
