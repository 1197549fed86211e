"""The Sentinel store: the master is found through Redis Sentinel, and followed through a failover.

Each new connection asks the sentinels which server is the master now, so
after a failover the next request reaches the promoted replica; a connection
still open to a demoted master fails on its first write (``READONLY``) and is
dropped. While no master is known, calls fail as :class:`StateUnavailable`
within the store's ``timeout``, and the rules answer as ``fail_open`` says.
"""

from __future__ import annotations

from typing import Any

from proxy.state.address import StoreMode
from proxy.state.redis_store import ScriptStore


class SentinelStore(ScriptStore):
    """State in the master a group of sentinels names: one ``EVALSHA`` per request.

    :param url: ``redis+sentinel://host:port,host:port/SERVICE`` (``rediss+sentinel`` for TLS).
    """

    kind = "redis-sentinel"
    store_mode = StoreMode.SENTINEL
    url_forms = "a redis+sentinel:// or rediss+sentinel://"
    _sentinel: Any = None

    def _connect(self) -> Any:
        from redis.asyncio.retry import Retry
        from redis.asyncio.sentinel import Sentinel
        from redis.backoff import NoBackoff

        kwargs = self.options.client_kwargs(self.address, self.timeout)
        sentinel_kwargs: dict[str, Any] = {
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
        }
        if self.options.sentinel_password:
            sentinel_kwargs["password"] = self.options.sentinel_password
        if self.address.tls:
            sentinel_kwargs["ssl"] = True
            sentinel_kwargs.update(self.options.tls_kwargs())
            kwargs["ssl"] = True
        self._sentinel = Sentinel(
            list(self.address.nodes), sentinel_kwargs=sentinel_kwargs, **kwargs
        )
        assert self.address.service is not None
        return self._sentinel.master_for(
            self.address.service,
            db=self.address.db,
            # One immediate retry: the connection that met a dead or demoted master is
            # dropped, and the retry's new connection asks the sentinels again.
            retry=Retry(NoBackoff(), 1),
            health_check_interval=30,
        )

    async def _close_client(self, client: Any) -> None:
        await client.aclose()
        sentinel, self._sentinel = self._sentinel, None
        if sentinel is not None:
            await sentinel.aclose()
