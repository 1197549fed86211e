"""The Redis stores' shared frame, and the single-server store: one ``EVALSHA`` per request.

Every store call is bounded as a whole by ``timeout``: connecting, retrying,
following a redirect or a failover, all inside one ``asyncio.timeout``, so a
hung or vanished server costs a request at most ``timeout`` and then
:class:`StateUnavailable`.
"""

from __future__ import annotations

import asyncio
import math
from abc import abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from proxy.state.address import ConnectOptions, StoreAddress, StoreMode, parse_store_url
from proxy.state.lua import (
    _MICROS,
    APPLY_SCRIPT,
    GC_MARGIN_MS,
    UNDO_SCRIPT,
    _micros,
    apply_args,
    read_outcome,
    read_record,
    script_keys,
    undo_call,
    undoable,
)
from proxy.state.ops import Op, Outcome, Record, StateUnavailable
from proxy.state.store import STATE_UNREPLICATED, StateStore


class ScriptStore(StateStore):
    """A store that runs the Lua scripts on some Redis client; subclasses make the client.

    :param url: the store URL (see :mod:`proxy.state.address`).
    :param prefix: prepended to every key.
    :param timeout: seconds one store call may take, whatever it takes inside.
    :param options: authentication and TLS beside the URL.
    """

    kind = "redis"

    store_mode: ClassVar[StoreMode]
    """The URL mode this store serves."""
    url_forms: ClassVar[str]
    """How its URLs are written, for the error when another is given."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "",
        timeout: float = 0.25,
        options: ConnectOptions | None = None,
    ) -> None:
        super().__init__(prefix)
        self.address: StoreAddress = parse_store_url(url)
        if self.address.mode is not self.store_mode:
            raise ValueError(f"{type(self).__name__} takes {self.url_forms} URL")
        self.timeout = timeout
        self.options = options or ConnectOptions()
        from redis.exceptions import RedisError

        self._errors: tuple[type[BaseException], ...] = (RedisError, OSError)
        self._client: Any = None
        self._apply_script: Any = None
        self._undo_script: Any = None
        self.replica_acks = 0
        """Replicas that must hold a write before the call answers (``WAIT``; 0: none)."""
        self.replica_ack_timeout = 0.05

    @property
    def mode(self) -> str:
        """``single``, ``cluster`` or ``sentinel``."""
        return self.address.mode.value

    def describe(self) -> str:
        """The URL without credentials."""
        return self.address.redacted()

    @abstractmethod
    def _connect(self) -> Any:
        """A new redis-py asyncio client (no I/O yet)."""

    async def _close_client(self, client: Any) -> None:
        await client.aclose()

    async def start(self) -> None:
        """Create the client and register the scripts; connections open on first use."""
        if self._client is not None:
            return
        self._client = self._connect()
        self._apply_script = self._client.register_script(APPLY_SCRIPT)
        self._undo_script = self._client.register_script(UNDO_SCRIPT)

    async def close(self) -> None:
        """Close the client and its connections."""
        client, self._client = self._client, None
        if client is not None:
            await self._close_client(client)

    @asynccontextmanager
    async def bounded(self, seconds: float | None = None) -> AsyncIterator[None]:
        """Run the body within ``seconds`` (default: the store's timeout); any failure, the deadline
        included, becomes :class:`StateUnavailable` (whose message names no secret)."""
        if self._client is None:
            await self.start()
        limit = self.timeout if seconds is None else seconds
        try:
            async with asyncio.timeout(limit):
                yield
        except TimeoutError:
            raise StateUnavailable(f"{self.kind}: no answer within {limit * 1000:.0f} ms") from None
        except self._errors as exc:
            # redis-py messages name host and port at most; never the password.
            message = " ".join(str(exc).split())[:200]
            raise StateUnavailable(f"{self.kind} {type(exc).__name__}: {message}") from exc

    async def ping(self) -> bool:
        """True when the store answers (for start-up logs and health)."""
        try:
            async with self.bounded():
                await self._client.ping()
        except StateUnavailable:
            return False
        return True

    async def _run(self, script: Any, keys: list[str], args: list[str]) -> Any:
        """One ``EVALSHA`` (redis-py loads the script and sends it again on ``NOSCRIPT``);
        with ``replica_acks``, a ``WAIT`` pipelined behind it, still one round trip."""
        if not self.replica_acks:
            return await script(keys=keys, args=args)
        from redis.exceptions import NoScriptError

        for _ in range(2):
            pipe = self._client.pipeline(transaction=False)
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            pipe.execute_command("WAIT", self.replica_acks, round(self.replica_ack_timeout * 1000))
            reply, acks = await pipe.execute(raise_on_error=False)
            if isinstance(reply, NoScriptError):
                await self._client.script_load(script.script)
                continue
            if isinstance(reply, BaseException):
                raise reply
            if isinstance(acks, BaseException) or int(acks) < self.replica_acks:
                STATE_UNREPLICATED.labels(self.kind).inc()
            return reply
        raise StateUnavailable(f"{self.kind}: the script could not be loaded")

    # -- operator actions: plain commands, each key on its own (Cluster routes them) -----------

    async def _call(self, make: Callable[[], Awaitable[Any]]) -> Any:
        """One command, bounded like every store call."""
        async with self.bounded():
            return await make()

    async def put_mark(self, key: str, *, until: float, now: float) -> None:
        """``SET key until PXAT until+margin``: the value decides, the expiry reclaims memory."""
        expires_ms = math.ceil(until * 1000) + GC_MARGIN_MS
        await self._call(
            lambda: self._client.set(self.prefix + key, str(_micros(until)), pxat=expires_ms)
        )

    async def marks(self, keys: Sequence[str], *, now: float) -> list[float | None]:
        """One ``MGET`` (a Cluster store reads the keys per slot: ``mget_nonatomic``)."""
        full = [self.prefix + key for key in keys]
        values = await self._call(lambda: self._mget(full)) if keys else []
        now_us = _micros(now)
        found: list[float | None] = []
        for value in values:
            until = int(value) if value is not None and value.isdigit() else None
            found.append(until / _MICROS if until is not None and until > now_us else None)
        return found

    async def records(self, keys: Sequence[str], *, now: float) -> list[Record | None]:
        """One ``MGET`` (per slot on a cluster), even for one key: the scripts never send
        one, so ``INFO commandstats`` counts these lookups apart."""
        full = [self.prefix + key for key in keys]
        if not full:
            return []
        values = await self._call(lambda: self._mget(full))
        return [read_record(value, now) for value in values]

    async def _mget(self, keys: list[str]) -> list[Any]:
        return list(await self._client.mget(keys))

    async def clear_mark(self, key: str) -> bool:
        """``DEL``."""
        return bool(await self._call(lambda: self._client.delete(self.prefix + key)))

    async def sessions(self, key: str, *, now: float) -> dict[str, float]:
        """``ZRANGEBYSCORE key (now +inf WITHSCORES``."""
        rows = await self._call(
            lambda: self._client.zrangebyscore(
                self.prefix + key, f"({_micros(now)}", "+inf", withscores=True
            )
        )
        return {
            (member.decode() if isinstance(member, bytes) else str(member)): score / _MICROS
            for member, score in rows
        }

    async def end_sessions(
        self, key: str, sessions: Sequence[str] | None = None, *, now: float
    ) -> int:
        """Count the live ones and remove them in one ``MULTI``."""
        full = self.prefix + key
        live = f"({_micros(now)}"

        async def end() -> Any:
            pipe = self._client.pipeline(transaction=True)
            if sessions is None:
                pipe.zcount(full, live, "+inf")
                pipe.delete(full)
            else:
                for session in sessions:
                    pipe.zscore(full, session)
                pipe.zrem(full, *sessions)
            return await pipe.execute()

        if sessions is not None and not sessions:
            return 0
        replies = await self._call(end)
        if sessions is None:
            return int(replies[0])
        return sum(1 for score in replies[:-1] if score is not None and score > _micros(now))

    async def _apply(self, ops: Sequence[Op], now: float, commit: bool) -> Outcome:
        keys = script_keys(ops, self.prefix)
        args = apply_args(ops, now, commit)
        async with self.bounded():
            reply = await self._run(self._apply_script, keys, args)
        return read_outcome(reply, ops)

    async def _undo(self, ops: Sequence[Op]) -> None:
        given = undoable(ops)
        if given:
            keys, args = undo_call(given, self.prefix)
            async with self.bounded():
                await self._run(self._undo_script, keys, args)


class RedisStore(ScriptStore):
    """State in one Redis server, shared by every replica: one ``EVALSHA`` per request.

    :param url: ``redis://``, ``rediss://`` or ``unix://`` URL.
    """

    kind = "redis"
    store_mode = StoreMode.SINGLE
    url_forms = "a redis://, rediss:// or unix://"

    def _connect(self) -> Any:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        kwargs = self.options.client_kwargs(self.address, self.timeout)
        # One immediate retry on a fresh connection: a pooled connection that died with a
        # restarted Redis fails once, and the request should not.
        kwargs["retry"] = Retry(NoBackoff(), 1)
        kwargs["health_check_interval"] = 30
        return Redis.from_url(self.address.url, **kwargs)
