"""The shared state of the access rules: use counters, session sets and rate buckets.

A request hands the store one batch of operations and gets one answer back; the
store evaluates the batch atomically, in three steps:

1. **rate buckets** (GCRA): if any bucket is empty the request is refused;
   otherwise every bucket counts the request, whatever the next steps decide
   (a rate limit counts attempts, including replays and over-limit sessions);
2. **checks**, read-only: a use counter already at its limit, or a session set
   full without this session, refuses the request;
3. **writes**, only when every check passed and the caller commits: counters
   go up, sessions are added, refreshed or released.

So a refused request spends no use and takes no slot, and two replicas racing
for the last slot can't both get it. Two stores share this meaning:
:class:`MemoryStore` (one process) and :class:`RedisStore` (every replica; one
Lua script, so one round trip per request whatever the number of rules).

Times are seconds since the epoch from the caller's clock (``services.clock``),
so replicas need synchronized clocks, and tests drive time with a fake clock.
"""

from __future__ import annotations

import heapq
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import Counter, Histogram

log = logging.getLogger("proxy.state")

STATE_CALLS = Counter(
    "license_proxy_state_calls",
    "Batches the state store evaluated, by store and outcome (ok, denied, error).",
    ["store", "outcome"],
)
STATE_SECONDS = Histogram(
    "license_proxy_state_seconds",
    "Wall time of one state store batch (one Redis round trip for the redis store).",
    ["store"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)


class StateUnavailable(Exception):
    """The store could not be reached or did not answer; the message names no secret."""


@dataclass(frozen=True, slots=True)
class RateOp:
    """Count one request in a GCRA bucket (a token bucket without a refill timer).

    :ivar key: the bucket.
    :ivar interval: seconds between requests at the sustained rate (period / rate).
    :ivar burst: requests admitted at once from a full bucket (at least 1).
    """

    key: str
    interval: float
    burst: int = 1


@dataclass(frozen=True, slots=True)
class UseOp:
    """Spend one use of a counter that allows ``limit`` uses and is kept ``ttl`` seconds."""

    key: str
    limit: int
    ttl: float


class SessionMode(StrEnum):
    """What a request does to its session."""

    TAKE = "T"
    """Start or continue the session: refused when the set is full without it."""
    TOUCH = "R"
    """Keep an existing session alive (renewals); never adds one, never refuses."""
    RELEASE = "X"
    """End the session now."""


@dataclass(frozen=True, slots=True)
class SessionOp:
    """Count a session in a set of at most ``limit`` live sessions.

    :ivar key: the set (one per subject).
    :ivar session: the session id (no whitespace: the rules pass digests).
    :ivar ttl: seconds a session stays live after its last request.
    """

    key: str
    session: str
    limit: int
    ttl: float
    mode: SessionMode = SessionMode.TAKE

    def __post_init__(self) -> None:
        if not self.session or any(c.isspace() for c in self.session):
            raise ValueError("a session id is a non-empty string without whitespace")


Op = RateOp | UseOp | SessionOp


@dataclass(frozen=True, slots=True)
class Outcome:
    """The store's answer to a batch.

    :ivar denied: the index of the operation that refused the request, or None.
    :ivar retry_after: seconds until the refusing operation may succeed, when known.
    :ivar taken: the committed operations :meth:`StateStore.undo` can give back
        (uses spent, sessions newly added).
    """

    denied: int | None = None
    retry_after: float | None = None
    taken: tuple[Op, ...] = ()


class StateStore(ABC):
    """Where the state rules keep their counters; see the module docstring for the meaning.

    :param prefix: prepended to every key, so several deployments can share one Redis.
    """

    kind = "abstract"

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self._seconds = STATE_SECONDS.labels(self.kind)
        self._calls = {o: STATE_CALLS.labels(self.kind, o) for o in ("ok", "denied", "error")}

    @abstractmethod
    async def start(self) -> None:
        """Open connections (inside the serving loop)."""

    @abstractmethod
    async def close(self) -> None:
        """Close connections."""

    async def apply(self, ops: Sequence[Op], *, now: float, commit: bool = True) -> Outcome:
        """Evaluate ``ops`` atomically at time ``now``; write only when ``commit`` and admitted.

        Raises :class:`StateUnavailable` when the store can't answer.
        """
        started = time.perf_counter()
        try:
            outcome = await self._apply(ops, now, commit)
        except StateUnavailable:
            self._calls["error"].inc()
            raise
        self._seconds.observe(time.perf_counter() - started)
        self._calls["ok" if outcome.denied is None else "denied"].inc()
        return outcome

    async def undo(self, ops: Sequence[Op]) -> None:
        """Give back what :meth:`apply` took (``Outcome.taken``): one use, or a new session.

        Raises :class:`StateUnavailable` when the store can't answer.
        """
        if ops:
            await self._undo(ops)

    @abstractmethod
    async def _apply(self, ops: Sequence[Op], now: float, commit: bool) -> Outcome: ...

    @abstractmethod
    async def _undo(self, ops: Sequence[Op]) -> None: ...

    def describe(self) -> str:
        """A short description for logs (never a password)."""
        return self.kind


# -- memory ----------------------------------------------------------------------------

#: Expired entries removed per batch at most, so one request never pays for a big sweep.
_SWEEP_BATCH = 64


class MemoryStore(StateStore):
    """State in this process's memory: exact for one process, lost when it exits.

    Every pipeline of the process with the same prefix shares one store while
    any of them runs (:meth:`shared`), so a configuration reload keeps every
    counter. A batch runs without awaiting, so it is atomic on the event loop.
    """

    kind = "memory"
    _live: dict[str, MemoryStore] = {}

    def __init__(self, prefix: str = "") -> None:
        super().__init__(prefix)
        self._values: dict[str, tuple[Any, float]] = {}
        self._expiries: list[tuple[float, str]] = []
        self._users = 0

    @classmethod
    def shared(cls, prefix: str = "") -> MemoryStore:
        """The running store for ``prefix``, or a new one (registered when it starts)."""
        live = cls._live.get(prefix)
        return live if live is not None else cls(prefix)

    async def start(self) -> None:
        """Register as the process's store for this prefix."""
        self._users += 1
        self._live.setdefault(self.prefix, self)

    async def close(self) -> None:
        """Unregister when the last pipeline using this store stops."""
        self._users = max(0, self._users - 1)
        if self._users == 0 and self._live.get(self.prefix) is self:
            del self._live[self.prefix]

    def __len__(self) -> int:
        return len(self._values)

    def _get(self, key: str, now: float, default: Any) -> Any:
        entry = self._values.get(key)
        if entry is None or entry[1] <= now:
            return default
        return entry[0]

    def _set(self, key: str, value: Any, expires: float) -> None:
        # One heap entry per key: a key already scheduled is rescheduled when its entry
        # comes up (see _sweep), so a busy key doesn't grow the heap on every request.
        if key not in self._values:
            heapq.heappush(self._expiries, (expires, key))
        self._values[key] = (value, expires)

    def _sweep(self, now: float) -> None:
        heap = self._expiries
        for _ in range(_SWEEP_BATCH):
            if not heap or heap[0][0] > now:
                return
            _, key = heapq.heappop(heap)
            entry = self._values.get(key)
            if entry is None:
                continue
            if entry[1] <= now:
                del self._values[key]
            else:
                heapq.heappush(heap, (entry[1], key))

    def _sessions(self, key: str, now: float) -> dict[str, float]:
        sessions: dict[str, float] = self._get(key, now, {})
        return {s: e for s, e in sessions.items() if e > now}

    async def _apply(self, ops: Sequence[Op], now: float, commit: bool) -> Outcome:
        self._sweep(now)
        keyed = [(self.prefix + op.key, op) for op in ops]
        buckets: list[tuple[str, RateOp, float]] = []
        for index, (key, op) in enumerate(keyed):
            if isinstance(op, RateOp):
                tat = max(self._get(key, now, now), now)
                tolerance = op.interval * (op.burst - 1)
                if tat - now > tolerance:
                    return Outcome(index, tat - now - tolerance)
                buckets.append((key, op, tat))
        for key, op, tat in buckets:
            self._set(key, tat + op.interval, tat + op.interval)
        fresh: set[int] = set()
        for index, (key, op) in enumerate(keyed):
            if isinstance(op, UseOp):
                if self._get(key, now, 0) >= op.limit:
                    return Outcome(index)
            elif isinstance(op, SessionOp) and op.mode is SessionMode.TAKE:
                sessions = self._sessions(key, now)
                if op.session not in sessions:
                    if len(sessions) >= op.limit:
                        retry = min(sessions.values()) - now if sessions else None
                        return Outcome(index, retry)
                    fresh.add(index)
        if not commit:
            return Outcome()
        taken: list[Op] = []
        for index, (key, op) in enumerate(keyed):
            if isinstance(op, UseOp):
                entry = self._values.get(key)
                if entry is None or entry[1] <= now:
                    self._set(key, 1, now + op.ttl)
                else:
                    self._values[key] = (entry[0] + 1, entry[1])
                taken.append(op)
            elif isinstance(op, SessionOp):
                sessions = self._sessions(key, now)
                if op.mode is SessionMode.RELEASE:
                    sessions.pop(op.session, None)
                elif op.mode is SessionMode.TAKE or op.session in sessions:
                    sessions[op.session] = now + op.ttl
                if sessions:
                    self._set(key, sessions, max(sessions.values()))
                elif key in self._values:
                    self._values[key] = ({}, now)  # empty: swept when its entry comes up
                if index in fresh:
                    taken.append(op)
        return Outcome(taken=tuple(taken))

    async def _undo(self, ops: Sequence[Op]) -> None:
        for op in ops:
            key = self.prefix + op.key
            entry = self._values.get(key)
            if entry is None:
                continue
            if isinstance(op, UseOp) and entry[0] > 0:
                self._values[key] = (entry[0] - 1, entry[1])
            elif isinstance(op, SessionOp):
                entry[0].pop(op.session, None)


# -- redis -----------------------------------------------------------------------------

# Every decision compares stored times with the caller's ``now``; Redis TTLs only reclaim
# memory, GC_MARGIN_MS after the last moment a key matters, so a Redis clock that runs ahead
# of the proxy's never drops a counter early. Times travel as integer microseconds (exact in
# Lua's doubles until the year 2255).
# ARGV: now, commit, then one space-separated field list per key (one argument per
# operation keeps the client's encoding work small):
#   rate    R interval tolerance            value: the theoretical arrival time
#   use     U limit    ttl                  value: "count expires"
#   session S limit    ttl session mode     sorted set: session -> expiry
# Answer: {index of the refusing op or 0, retry-after in microseconds or -1, taken flags}.
GC_MARGIN_MS = 60_000
APPLY_SCRIPT = """
local now = tonumber(ARGV[1])
local commit = ARGV[2] == '1'
local margin = GC_MARGIN_MS
local function keep(key, until_us)
  redis.call('PEXPIRE', key, math.max(1, math.ceil((until_us - now) / 1000)) + margin)
end
local function read_use(key)
  local raw = redis.call('GET', key)
  if raw then
    local used, expires = string.match(raw, '^(%d+) (%d+)$')
    if used and tonumber(expires) > now then
      return tonumber(used), tonumber(expires)
    end
  end
  return 0, nil
end
local ops = {}
for k = 1, #KEYS do
  local op = {}
  for field in string.gmatch(ARGV[2 + k], '%S+') do
    op[#op + 1] = field
  end
  ops[k] = op
end
for k, op in ipairs(ops) do
  if op[1] == 'R' then
    local tat = tonumber(redis.call('GET', KEYS[k])) or now
    if tat < now then tat = now end
    local tolerance = tonumber(op[3])
    if tat - now > tolerance then
      return {k, tat - now - tolerance, ''}
    end
    op.tat = tat
  end
end
for k, op in ipairs(ops) do
  if op[1] == 'R' then
    local tat = op.tat + tonumber(op[2])
    redis.call('SET', KEYS[k], string.format('%.0f', tat))
    keep(KEYS[k], tat)
  end
end
for k, op in ipairs(ops) do
  if op[1] == 'U' then
    if read_use(KEYS[k]) >= tonumber(op[2]) then
      return {k, -1, ''}
    end
  elseif op[1] == 'S' then
    redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', string.format('%.0f', now))
    if op[5] == 'T' and not redis.call('ZSCORE', KEYS[k], op[4]) then
      if redis.call('ZCARD', KEYS[k]) >= tonumber(op[2]) then
        local first = redis.call('ZRANGE', KEYS[k], 0, 0, 'WITHSCORES')
        if first[2] then
          return {k, tonumber(first[2]) - now, ''}
        end
        return {k, -1, ''}
      end
      op.fresh = true
    end
  end
end
if not commit then
  return {0, -1, ''}
end
local taken = {}
for k, op in ipairs(ops) do
  local flag = '0'
  if op[1] == 'U' then
    local used, expires = read_use(KEYS[k])
    expires = expires or (now + tonumber(op[3]))
    redis.call('SET', KEYS[k], string.format('%d %.0f', used + 1, expires))
    keep(KEYS[k], expires)
    flag = '1'
  elseif op[1] == 'S' then
    if op[5] == 'X' then
      redis.call('ZREM', KEYS[k], op[4])
    elseif op[5] == 'T' or redis.call('ZSCORE', KEYS[k], op[4]) then
      redis.call('ZADD', KEYS[k], string.format('%.0f', now + tonumber(op[3])), op[4])
    end
    local last = redis.call('ZRANGE', KEYS[k], -1, -1, 'WITHSCORES')
    if last[2] then
      keep(KEYS[k], tonumber(last[2]))
    end
    if op.fresh then
      flag = '1'
    end
  end
  taken[k] = flag
end
return {0, -1, table.concat(taken)}
""".replace("GC_MARGIN_MS", str(GC_MARGIN_MS))

# ARGV: two values per key: kind (U or S), session id (S only).
UNDO_SCRIPT = """
for k = 1, #KEYS do
  local kind = ARGV[2 * k - 1]
  if kind == 'U' then
    local raw = redis.call('GET', KEYS[k])
    local used, expires = string.match(raw or '', '^(%d+) (%d+)$')
    if used and tonumber(used) > 0 then
      redis.call('SET', KEYS[k], string.format('%d %s', tonumber(used) - 1, expires), 'KEEPTTL')
    end
  elseif kind == 'S' then
    redis.call('ZREM', KEYS[k], ARGV[2 * k])
  end
end
return 0
"""

_MICROS = 1_000_000


def _micros(seconds: float) -> int:
    return round(seconds * _MICROS)


def _encode(op: Op) -> str:
    if isinstance(op, RateOp):
        interval = max(1, _micros(op.interval))
        return f"R {interval} {interval * (op.burst - 1)}"
    if isinstance(op, UseOp):
        return f"U {op.limit} {max(1, _micros(op.ttl))}"
    return f"S {op.limit} {max(1, _micros(op.ttl))} {op.session} {op.mode.value}"


def redacted_url(url: str) -> str:
    """A Redis URL without its user and password, for logs."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "redis (unreadable URL)"
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    return f"{parts.scheme}://{host}{port}{parts.path}"


class RedisStore(StateStore):
    """State in Redis, shared by every replica: one ``EVALSHA`` per request.

    :param url: ``redis://``, ``rediss://`` or ``unix://`` URL.
    :param password: overrides a password in the URL (kept out of config files).
    :param timeout: seconds to connect and to wait for an answer.
    """

    kind = "redis"

    def __init__(
        self, url: str, *, prefix: str = "", password: str | None = None, timeout: float = 0.25
    ) -> None:
        super().__init__(prefix)
        self._url = url
        self._password = password
        self._timeout = timeout
        from redis.exceptions import RedisError

        self._errors = RedisError
        self._client: Any = None
        self._apply_script: Any = None
        self._undo_script: Any = None

    def describe(self) -> str:
        """The URL without credentials."""
        return redacted_url(self._url)

    async def start(self) -> None:
        """Create the client and its pool; connections open on first use."""
        if self._client is not None:
            return
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        options: dict[str, Any] = {
            "socket_timeout": self._timeout,
            "socket_connect_timeout": self._timeout,
            # One immediate retry on a fresh connection: a pooled connection that died with
            # a restarted Redis fails once, and the request should not.
            "retry": Retry(NoBackoff(), 1),
            "health_check_interval": 30,
        }
        if self._password is not None:
            options["password"] = self._password
        self._client = Redis.from_url(self._url, **options)
        self._apply_script = self._client.register_script(APPLY_SCRIPT)
        self._undo_script = self._client.register_script(UNDO_SCRIPT)

    async def close(self) -> None:
        """Close the pool."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def ping(self) -> bool:
        """True when Redis answers (for start-up logs and health)."""
        try:
            await self._call(lambda: self._client.ping())
        except StateUnavailable:
            return False
        return True

    async def _call(self, make: Any) -> Any:
        if self._client is None:
            await self.start()
        try:
            return await make()
        except (self._errors, OSError) as exc:
            # redis-py messages name host and port at most; never the password.
            message = " ".join(str(exc).split())[:200]
            raise StateUnavailable(f"redis {type(exc).__name__}: {message}") from exc

    async def _apply(self, ops: Sequence[Op], now: float, commit: bool) -> Outcome:
        keys = [self.prefix + op.key for op in ops]
        args = [str(_micros(now)), "1" if commit else "0", *map(_encode, ops)]
        denied, retry, flags = await self._call(lambda: self._apply_script(keys=keys, args=args))
        if denied:
            retry_after = int(retry) / _MICROS if int(retry) >= 0 else None
            return Outcome(int(denied) - 1, retry_after)
        flags = flags.decode() if isinstance(flags, bytes) else str(flags)
        taken = tuple(op for op, flag in zip(ops, flags, strict=False) if flag == "1")
        return Outcome(taken=taken)

    async def _undo(self, ops: Sequence[Op]) -> None:
        keys = []
        args: list[str] = []
        for op in ops:
            if isinstance(op, UseOp):
                keys.append(self.prefix + op.key)
                args.extend(("U", ""))
            elif isinstance(op, SessionOp):
                keys.append(self.prefix + op.key)
                args.extend(("S", op.session))
        if keys:
            await self._call(lambda: self._undo_script(keys=keys, args=args))


def open_store(
    url: str, *, prefix: str = "", password: str | None = None, timeout: float = 0.25
) -> StateStore:
    """The store a ``[access.state] store`` value names: ``memory`` or a Redis URL."""
    if url == "memory":
        return MemoryStore.shared(prefix)
    return RedisStore(url, prefix=prefix, password=password, timeout=timeout)


__all__ = [
    "MemoryStore",
    "Op",
    "Outcome",
    "RateOp",
    "RedisStore",
    "SessionMode",
    "SessionOp",
    "StateStore",
    "StateUnavailable",
    "UseOp",
    "open_store",
    "redacted_url",
]
