"""The Redis store: one Lua script, so one round trip per request whatever the rules."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from proxy.state.ops import Op, Outcome, RateOp, SessionOp, StateUnavailable, UseOp
from proxy.state.store import StateStore

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

    # -- operator actions: plain commands, each key on its own (Cluster routes them) -----------

    async def put_mark(self, key: str, *, until: float, now: float) -> None:
        """``SET key until PXAT until+margin``: the value decides, the expiry reclaims memory."""
        expires_ms = math.ceil(until * 1000) + GC_MARGIN_MS
        await self._call(
            lambda: self._client.set(self.prefix + key, str(_micros(until)), pxat=expires_ms)
        )

    async def marks(self, keys: Sequence[str], *, now: float) -> list[float | None]:
        """One ``MGET`` (a Cluster store reads the keys per slot: ``mget_nonatomic``)."""
        full = [self.prefix + key for key in keys]
        values = await self._call(lambda: self._client.mget(full)) if keys else []
        now_us = _micros(now)
        found: list[float | None] = []
        for value in values:
            until = int(value) if value is not None and value.isdigit() else None
            found.append(until / _MICROS if until is not None and until > now_us else None)
        return found

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
