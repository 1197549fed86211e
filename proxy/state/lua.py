"""The Lua scripts every Redis store runs, and how operations travel to them.

One ``EVALSHA`` of :data:`APPLY_SCRIPT` evaluates a batch of operations
atomically on one Redis (or one cluster slot); :data:`UNDO_SCRIPT` gives back
what a batch took. Keys reach the scripts as ``KEYS``, so a cluster routes
each call by them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from proxy.state.ops import Op, Outcome, RateOp, SessionOp, UseOp

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


def apply_args(ops: Sequence[Op], now: float, commit: bool) -> list[str]:
    """``ARGV`` of :data:`APPLY_SCRIPT` for ``ops``."""
    return [str(_micros(now)), "1" if commit else "0", *map(_encode, ops)]


def undo_args(ops: Sequence[Op]) -> list[str]:
    """``ARGV`` of :data:`UNDO_SCRIPT` for the uses and sessions in ``ops`` (in order)."""
    args: list[str] = []
    for op in ops:
        if isinstance(op, UseOp):
            args.extend(("U", ""))
        elif isinstance(op, SessionOp):
            args.extend(("S", op.session))
    return args


def undoable(ops: Sequence[Op]) -> list[Op]:
    """The operations :data:`UNDO_SCRIPT` can give back (uses and sessions)."""
    return [op for op in ops if isinstance(op, UseOp | SessionOp)]


def parse_reply(reply: Any) -> tuple[int | None, float | None, str]:
    """An :data:`APPLY_SCRIPT` reply as (index of the refusing op or None, retry-after
    seconds or None, the taken flags: ``"1"`` per operation that took something)."""
    denied, retry, flags = reply
    if int(denied):
        return int(denied) - 1, (int(retry) / _MICROS if int(retry) >= 0 else None), ""
    return None, None, flags.decode() if isinstance(flags, bytes) else str(flags)


def read_outcome(reply: Any, ops: Sequence[Op]) -> Outcome:
    """The :class:`Outcome` of an :data:`APPLY_SCRIPT` reply for ``ops``."""
    denied, retry_after, flags = parse_reply(reply)
    if denied is not None:
        return Outcome(denied, retry_after)
    return Outcome(taken=tuple(op for op, flag in zip(ops, flags, strict=False) if flag == "1"))
