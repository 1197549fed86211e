"""The Redis Cluster store: one ``EVALSHA`` per hash slot a request touches, all in one round trip.

The rules tag their keys (``{tag}kind:digest``) so that a subject's token
uses, sessions and rate bucket share one slot and settle in one atomic script,
exactly as on a single Redis. A request whose keys span slots (the per-address
bucket lives in the address's own slot) sends one script per slot in one
pipeline: the slots answer in parallel, each atomically. When one slot refuses
and another admitted, what the admitting slot took (a use, a new session) is
given back at once, so a refused request still spends nothing; only its rate
buckets in the other slots have counted it (a rate limit counts attempts).

redis-py's cluster client follows ``MOVED`` and ``ASK`` (a resharding) and
refreshes the slot map after a failover. While a slot moves, a script whose
keys are not all on one side yet is turned away with ``TRYAGAIN`` (it did not
run); it is sent again until it runs or the call's ``timeout`` is up. A master
that lacks the script (a promoted replica, a restarted node) answers
``NOSCRIPT``, and the script is loaded on every master and the call sent again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from proxy.state.address import ConnectOptions, StoreMode
from proxy.state.lua import (
    APPLY_SCRIPT,
    UNDO_SCRIPT,
    apply_args,
    parse_reply,
    script_keys,
    taken_ops,
    undo_call,
    undoable,
)
from proxy.state.ops import Op, Outcome, RateOp, StateUnavailable, op_keys
from proxy.state.redis_store import ScriptStore

#: Connections per node at most: redis-py's cluster client refuses a command past it
#: (it does not queue), so it is set above any in-flight count a proxy reaches.
MAX_CONNECTIONS_PER_NODE = 10_000
#: Seconds between slot-map refreshes asked for by errors (redis-py's default is 1 s).
TOPOLOGY_REFRESH_INTERVAL = 0.1
#: Seconds to wait before sending again a call a moving slot turned away.
RESHARD_PAUSE = 0.01


class ClusterStore(ScriptStore):
    """State in a Redis Cluster: one ``EVALSHA`` per slot touched, pipelined.

    :param url: ``redis+cluster://host:port,host:port`` seed nodes
        (``rediss+cluster`` for TLS); the other nodes are discovered.
    """

    kind = "redis-cluster"
    store_mode = StoreMode.CLUSTER
    url_forms = "a redis+cluster:// or rediss+cluster://"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "",
        timeout: float = 0.25,
        options: ConnectOptions | None = None,
    ) -> None:
        super().__init__(url, prefix=prefix, timeout=timeout, options=options)
        from redis.crc import key_slot
        from redis.exceptions import (
            ClusterError,
            NoScriptError,
            RedisClusterException,
            TryAgainError,
        )

        self._key_slot = key_slot
        self._no_script = NoScriptError
        self._try_again = TryAgainError
        # redis-py gives up on redirects and TRYAGAIN after 16 tries with this exact class
        self._redirects_exhausted = ClusterError
        self._errors = (*self._errors, RedisClusterException)

    def _connect(self) -> Any:
        from redis.asyncio.cluster import ClusterNode, RedisCluster
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        kwargs = self.options.client_kwargs(self.address, self.timeout)
        if self.address.tls:
            kwargs["ssl"] = True
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in self.address.nodes],
            # the servers' own cluster-require-full-coverage decides what a missing slot means
            require_full_coverage=False,
            # one immediate retry after a connection error, on a refreshed slot map
            retry=Retry(NoBackoff(), 1),
            max_connections=MAX_CONNECTIONS_PER_NODE,
            topology_refresh_min_interval=TOPOLOGY_REFRESH_INTERVAL,
            **kwargs,
        )

    async def _mget(self, keys: list[str]) -> list[Any]:
        # The keys of one MGET may lie in several slots: read them slot by slot.
        return list(await self._client.mget_nonatomic(keys))

    def _not_run(self, error: BaseException) -> bool:
        """True for the answers of a slot on the move: the script did not run."""
        return isinstance(error, self._try_again) or type(error) is self._redirects_exhausted

    async def _run(self, script: Any, keys: list[str], args: list[str]) -> Any:
        """One ``EVALSHA``, sent again while its slot turns it away (within the call's bound)."""
        while True:
            try:
                return await script(keys=keys, args=args)
            except self._errors as exc:
                if not self._not_run(exc):
                    raise
            await asyncio.sleep(RESHARD_PAUSE)

    def slot_groups(self, ops: Sequence[Op]) -> list[list[int]]:
        """The indexes of ``ops`` grouped by hash slot, in the order slots first appear.

        :raises ValueError: when one operation's keys lie in different slots (the rules tag
            every key of one operation alike).
        """
        groups: dict[int, list[int]] = {}
        for index, op in enumerate(ops):
            slots = {self._key_slot((self.prefix + key).encode()) for key in op_keys(op)}
            if len(slots) != 1:
                raise ValueError("the keys of one state operation must share a hash slot")
            groups.setdefault(slots.pop(), []).append(index)
        return list(groups.values())

    async def _apply(self, ops: Sequence[Op], now: float, commit: bool) -> Outcome:
        groups = self.slot_groups(ops)
        if len(groups) <= 1:
            return await super()._apply(ops, now, commit)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        calls = []
        for group in groups:
            part = [ops[i] for i in group]
            calls.append((script_keys(part, self.prefix), apply_args(part, now, commit)))
        async with self.bounded():
            replies = await self._pipelined(self._apply_script, APPLY_SCRIPT, calls)
        refusals: list[tuple[int, float | None]] = []
        taken: dict[int, Op] = {}
        for group, reply in zip(groups, replies, strict=True):
            denied, retry_after, flags = parse_reply(reply)
            if denied is not None:
                refusals.append((group[denied], retry_after))
            else:
                part = [ops[i] for i in group]
                taken.update((group[j], op) for j, op in taken_ops(part, flags))
        if not refusals:
            return Outcome(taken=tuple(taken[i] for i in sorted(taken)))
        # As in one script: an empty rate bucket refuses first, then the first failed check.
        index, retry_after = min(refusals, key=lambda r: (not isinstance(ops[r[0]], RateOp), r[0]))
        if taken:
            await self._give_back([taken[i] for i in sorted(taken)], deadline - loop.time())
        return Outcome(index, retry_after)

    async def _give_back(self, ops: Sequence[Op], remaining: float) -> None:
        """Undo what the admitting slots of a refused request took, within the time left;
        when there is none, what was taken lapses with its TTL (the refusal stands)."""
        if remaining <= 0:
            return
        try:
            await self._undo_within(ops, remaining)
        except StateUnavailable:
            return

    async def _undo(self, ops: Sequence[Op]) -> None:
        await self._undo_within(ops, self.timeout)

    async def _undo_within(self, ops: Sequence[Op], seconds: float) -> None:
        given = undoable(ops)
        if not given:
            return
        calls = []
        for group in self.slot_groups(given):
            calls.append(undo_call([given[i] for i in group], self.prefix))
        async with self.bounded(seconds):
            if len(calls) == 1:
                keys, args = calls[0]
                await self._run(self._undo_script, keys, args)
            else:
                await self._pipelined(self._undo_script, UNDO_SCRIPT, calls)

    async def _pipelined(
        self, script: Any, source: str, calls: list[tuple[list[str], list[str]]]
    ) -> list[Any]:
        """One ``EVALSHA`` per call in one pipeline (each node gets its calls in one write).
        Calls that met a master without the script are sent again once it is loaded; calls
        a moving slot turned away, after a pause (within the call's bound)."""
        replies: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        while pending:
            answers = await self._send(script.sha, [calls[i] for i in pending])
            again, load = [], False
            for i, reply in zip(pending, answers, strict=True):
                if isinstance(reply, self._no_script):
                    again.append(i)
                    load = True
                elif isinstance(reply, Exception) and self._not_run(reply):
                    again.append(i)
                elif isinstance(reply, Exception):
                    raise reply
                else:
                    replies[i] = reply
            if load:
                await self._client.script_load(source)  # on every master
            elif again:
                await asyncio.sleep(RESHARD_PAUSE)
            pending = again
        return replies

    async def _send(self, sha: str, calls: list[tuple[list[str], list[str]]]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))
