"""The shared state of the access rules: use counters, session sets and rate buckets.

A request hands the store one batch of operations and gets one answer back; the
store evaluates the batch atomically, in three steps:

1. **rate buckets** (GCRA): if any bucket is empty the request is refused;
   otherwise every bucket counts the request, whatever the next steps decide
   (a rate limit counts attempts, including replays and over-limit sessions);
2. **checks**, read-only: a use counter already at its limit, or a session set
   full without this session, refuses the request;
3. **writes**, only when every check passed and the caller commits: counters
   go up, sessions are added, refreshed or released, records are begun,
   extended or ended.

A use counter given a retry mark comes first: a batch that finds its mark is the
retry of an admitted request (same token, same challenge) and spends nothing, not
even a rate bucket's allowance (:class:`UseOp`).

So a refused request spends no use and takes no slot, and two replicas racing
for the last slot can't both get it. Every store shares this meaning:
:class:`MemoryStore` (one process), and for every replica :class:`RedisStore`
(one Redis), :class:`SentinelStore` (the master a Sentinel group names) and
:class:`ClusterStore` (Redis Cluster): one Lua script per request (per hash
slot touched, in one pipeline, on a cluster), so one round trip whatever the
number of rules.

Times are seconds since the epoch from the caller's clock (``services.clock``),
so replicas need synchronized clocks, and tests drive time with a fake clock.
"""

from proxy.state.address import ConnectOptions, StoreMode, parse_store_url, redacted_url
from proxy.state.cluster_store import ClusterStore
from proxy.state.keys import slot_tag, state_key
from proxy.state.memory import MemoryStore
from proxy.state.ops import (
    Op,
    Outcome,
    RateOp,
    Record,
    RecordMode,
    RecordOp,
    SessionMode,
    SessionOp,
    StateUnavailable,
    UseOp,
    op_keys,
)
from proxy.state.redis_store import RedisStore, ScriptStore
from proxy.state.sentinel_store import SentinelStore
from proxy.state.settings import StateSettings, open_store, store_from_settings, store_lifetime
from proxy.state.store import StateStore

__all__ = [
    "ClusterStore",
    "ConnectOptions",
    "MemoryStore",
    "Op",
    "Outcome",
    "RateOp",
    "Record",
    "RecordMode",
    "RecordOp",
    "RedisStore",
    "ScriptStore",
    "SentinelStore",
    "SessionMode",
    "SessionOp",
    "StateSettings",
    "StateStore",
    "StateUnavailable",
    "StoreMode",
    "UseOp",
    "op_keys",
    "open_store",
    "parse_store_url",
    "redacted_url",
    "slot_tag",
    "state_key",
    "store_from_settings",
    "store_lifetime",
]
