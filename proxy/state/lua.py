"""The Lua scripts every Redis store runs, and how operations travel to them.

One ``EVALSHA`` of :data:`APPLY_SCRIPT` evaluates a batch of operations
atomically on one Redis (or one cluster slot); :data:`UNDO_SCRIPT` gives back
what a batch took. Keys reach the scripts as ``KEYS``, so a cluster routes
each call by them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from proxy.state.ops import Op, Outcome, RateOp, Record, RecordOp, SessionOp, UseOp, op_keys

# Every decision compares stored times with the caller's ``now``; Redis TTLs only reclaim
# memory, GC_MARGIN_MS after the last moment a key matters, so a Redis clock that runs ahead
# of the proxy's never drops a counter early. Times travel as integer microseconds (exact in
# Lua's doubles until the year 2255).
# ARGV: now, commit, then one space-separated field list per operation (one argument per
# operation keeps the client's encoding work small). KEYS hold each operation's keys in
# order (ops.op_keys), its own key first:
#   rate    R interval tolerance                         keys: bucket (value: arrival time)
#   use     U limit ttl window                           keys: counter ["count expires"],
#                                                              retry mark when window > 0
#                                                              ["holders expires"]
#   session S limit ttl session mode flags climit content keys: sorted set session -> expiry,
#                                                              stopped set (flag K),
#                                                              hash session -> content (flag C)
#   record  W mode ttl payload...                        keys: record ["started until payload"]
# Answer: {index of the refusing op or 0, retry-after in microseconds or -1, taken flags:
# one per operation, 1 took something, r rode a use an earlier request spent, 0 nothing}.
GC_MARGIN_MS = 60_000
APPLY_SCRIPT = """
local now = tonumber(ARGV[1])
local commit = ARGV[2] == '1'
local margin = GC_MARGIN_MS
local function stamp(us)
  return string.format('%.0f', us)
end
local function keep(key, until_us)
  redis.call('PEXPIRE', key, math.max(1, math.ceil((until_us - now) / 1000)) + margin)
end
local function keep_last(key)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then
    keep(key, tonumber(last[2]))
  end
  return last[2]
end
local function read_pair(key)
  local raw = redis.call('GET', key)
  if raw then
    local first, expires = string.match(raw, '^(%d+) (%d+)$')
    if first and tonumber(expires) > now then
      return tonumber(first), tonumber(expires)
    end
  end
  return 0, nil
end
local ops = {}
local cursor = 1
local function next_key()
  local key = KEYS[cursor]
  cursor = cursor + 1
  return key
end
for i = 3, #ARGV do
  local arg = ARGV[i]
  local op = {kind = string.sub(arg, 1, 1)}
  op.key = next_key()
  if op.kind == 'W' then
    local mode, ttl, payload = string.match(arg, '^W (%a) (%d+) (.*)$')
    op.mode, op.ttl, op.payload = mode, tonumber(ttl), payload
  else
    local f = {}
    for field in string.gmatch(arg, '%S+') do
      f[#f + 1] = field
    end
    if op.kind == 'R' then
      op.interval, op.tolerance = tonumber(f[2]), tonumber(f[3])
    elseif op.kind == 'U' then
      op.limit, op.ttl, op.window = tonumber(f[2]), tonumber(f[3]), tonumber(f[4])
      if op.window > 0 then
        op.marker = next_key()
      end
    else
      op.limit, op.ttl, op.session, op.mode = tonumber(f[2]), tonumber(f[3]), f[4], f[5]
      if string.find(f[6], 'K', 1, true) then
        op.stopped = next_key()
      end
      if string.find(f[6], 'C', 1, true) then
        op.contents = next_key()
      end
      op.climit, op.content = tonumber(f[7]), f[8]
    end
  end
  ops[#ops + 1] = op
end
-- a retry of an admitted request (same token, same challenge, within the window)
local retry = false
for _, op in ipairs(ops) do
  if op.kind == 'U' and op.marker and read_pair(op.marker) > 0 then
    op.rides = true
    retry = true
  end
end
if not retry then
  for k, op in ipairs(ops) do
    if op.kind == 'R' then
      local tat = tonumber(redis.call('GET', op.key)) or now
      if tat < now then tat = now end
      if tat - now > op.tolerance then
        return {k, tat - now - op.tolerance, ''}
      end
      op.tat = tat
    end
  end
  for _, op in ipairs(ops) do
    if op.kind == 'R' then
      local tat = op.tat + op.interval
      redis.call('SET', op.key, stamp(tat))
      keep(op.key, tat)
    end
  end
end
-- whether a new session fits: nil and the sessions to stop, or the retry-after (-1: unknown)
local function plan_take(op)
  local members = redis.call('ZRANGE', op.key, 0, -1, 'WITHSCORES')
  local count = #members / 2
  local same = {}
  if op.contents and op.climit > 0 then
    for i = 1, #members, 2 do
      if redis.call('HGET', op.contents, members[i]) == op.content then
        same[#same + 1] = i
      end
    end
  end
  local content_full = op.climit > 0 and #same >= op.climit
  if not op.stopped then
    if count >= op.limit then
      if members[2] then return tonumber(members[2]) - now end
      return -1
    end
    if content_full then
      return tonumber(members[same[1] + 1]) - now
    end
    return nil, {}
  end
  local victims = {}
  local skip = nil
  if content_full then
    skip = same[1]
    victims[1] = members[skip]
    count = count - 1
  end
  if count >= op.limit then
    local found = false
    for i = 1, #members, 2 do
      if i ~= skip then
        victims[#victims + 1] = members[i]
        found = true
        break
      end
    end
    if not found then return -1 end
  end
  return nil, victims
end
for k, op in ipairs(ops) do
  if op.kind == 'U' then
    if not op.rides and read_pair(op.key) >= op.limit then
      return {k, -1, ''}
    end
  elseif op.kind == 'S' then
    redis.call('ZREMRANGEBYSCORE', op.key, '-inf', stamp(now))
    if op.stopped then
      redis.call('ZREMRANGEBYSCORE', op.stopped, '-inf', stamp(now))
    end
    if op.contents then
      for _, field in ipairs(redis.call('HKEYS', op.contents)) do
        if not redis.call('ZSCORE', op.key, field) then
          redis.call('HDEL', op.contents, field)
        end
      end
    end
    local present = redis.call('ZSCORE', op.key, op.session)
    if op.mode == 'T' and not present then
      local retry_after, victims = plan_take(op)
      if retry_after then
        return {k, retry_after, ''}
      end
      op.victims = victims
      op.fresh = true
    elseif op.mode == 'R' and op.stopped and not present
        and redis.call('ZSCORE', op.stopped, op.session) then
      return {k, -1, ''}
    end
  end
end
if not commit then
  return {0, -1, ''}
end
local taken = {}
for k, op in ipairs(ops) do
  local flag = '0'
  if op.kind == 'U' then
    if op.rides then
      local holders, expires = read_pair(op.marker)
      redis.call('SET', op.marker, string.format('%d %s', holders + 1, stamp(expires)))
      keep(op.marker, expires)
      flag = 'r'
    else
      local used, expires = read_pair(op.key)
      expires = expires or (now + op.ttl)
      redis.call('SET', op.key, string.format('%d %s', used + 1, stamp(expires)))
      keep(op.key, expires)
      if op.marker then
        redis.call('SET', op.marker, '1 ' .. stamp(now + op.window))
        keep(op.marker, now + op.window)
      end
      flag = '1'
    end
  elseif op.kind == 'S' then
    if op.mode == 'X' then
      redis.call('ZREM', op.key, op.session)
      if op.contents then redis.call('HDEL', op.contents, op.session) end
      if op.stopped then redis.call('ZREM', op.stopped, op.session) end
    elseif op.mode == 'T' then
      for _, victim in ipairs(op.victims or {}) do
        redis.call('ZREM', op.key, victim)
        if op.contents then redis.call('HDEL', op.contents, victim) end
        redis.call('ZADD', op.stopped, stamp(now + op.ttl), victim)
      end
      redis.call('ZADD', op.key, stamp(now + op.ttl), op.session)
      if op.contents then redis.call('HSET', op.contents, op.session, op.content) end
      if op.stopped then redis.call('ZREM', op.stopped, op.session) end
    elseif redis.call('ZSCORE', op.key, op.session) then
      redis.call('ZADD', op.key, stamp(now + op.ttl), op.session)
    end
    local last = keep_last(op.key)
    if op.contents and last then
      keep(op.contents, tonumber(last))
    end
    if op.stopped then
      keep_last(op.stopped)
    end
    if op.fresh then
      flag = '1'
    end
  elseif op.kind == 'W' then
    local raw = redis.call('GET', op.key)
    local started, expires, payload = nil, nil, nil
    if raw then
      started, expires, payload = string.match(raw, '^(%d+) (%d+) (.*)$')
      if started and tonumber(expires) <= now then started = nil end
    end
    if op.mode == 'B' then
      local until_us = now + op.ttl
      if started then
        until_us = math.max(tonumber(expires), until_us)
      else
        started = stamp(now)
        flag = '1'
      end
      redis.call('SET', op.key, started .. ' ' .. stamp(until_us) .. ' ' .. op.payload)
      keep(op.key, until_us)
    elseif op.mode == 'E' then
      if started then
        local until_us = math.max(tonumber(expires), now + op.ttl)
        redis.call('SET', op.key, started .. ' ' .. stamp(until_us) .. ' ' .. payload)
        keep(op.key, until_us)
      end
    else
      redis.call('DEL', op.key)
    end
  end
  taken[k] = flag
end
return {0, -1, table.concat(taken)}
""".replace("GC_MARGIN_MS", str(GC_MARGIN_MS))

# ARGV: one field list per operation given back; KEYS: its keys in order.
#   use     U rides(0/1) marker(0/1)      keys: counter [, retry mark]
#   session S session contents(0/1)       keys: set [, hash session -> content]
#   record  W                             keys: record
UNDO_SCRIPT = """
local cursor = 1
local function next_key()
  local key = KEYS[cursor]
  cursor = cursor + 1
  return key
end
for i = 1, #ARGV do
  local f = {}
  for field in string.gmatch(ARGV[i], '%S+') do
    f[#f + 1] = field
  end
  local key = next_key()
  if f[1] == 'U' then
    local give_back = f[2] == '0'
    if f[3] == '1' then
      local marker = next_key()
      local raw = redis.call('GET', marker)
      local holders, expires = string.match(raw or '', '^(%d+) (%d+)$')
      if holders then
        holders = tonumber(holders) - 1
        if holders > 0 then
          redis.call('SET', marker, string.format('%d %s', holders, expires), 'KEEPTTL')
          give_back = false
        else
          redis.call('DEL', marker)
          give_back = true
        end
      end
    end
    if give_back then
      local raw = redis.call('GET', key)
      local used, expires = string.match(raw or '', '^(%d+) (%d+)$')
      if used and tonumber(used) > 0 then
        redis.call('SET', key, string.format('%d %s', tonumber(used) - 1, expires), 'KEEPTTL')
      end
    end
  elseif f[1] == 'S' then
    redis.call('ZREM', key, f[2])
    if f[3] == '1' then
      redis.call('HDEL', next_key(), f[2])
    end
  elseif f[1] == 'W' then
    redis.call('DEL', key)
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
        window = max(1, _micros(op.retry_window)) if op.retry_key is not None else 0
        return f"U {op.limit} {max(1, _micros(op.ttl))} {window}"
    if isinstance(op, RecordOp):
        return f"W {op.mode.value} {max(0, _micros(op.ttl))} {op.payload}"
    flags = ("K" if op.stopped_key is not None else "") + ("C" if op.content_key else "")
    return (
        f"S {op.limit} {max(1, _micros(op.ttl))} {op.session} {op.mode.value} "
        f"{flags or '-'} {op.content_limit} {op.content}"
    )


def script_keys(ops: Sequence[Op], prefix: str = "") -> list[str]:
    """``KEYS`` of :data:`APPLY_SCRIPT` for ``ops``: every operation's keys, in order."""
    return [prefix + key for op in ops for key in op_keys(op)]


def apply_args(ops: Sequence[Op], now: float, commit: bool) -> list[str]:
    """``ARGV`` of :data:`APPLY_SCRIPT` for ``ops``."""
    return [str(_micros(now)), "1" if commit else "0", *map(_encode, ops)]


def undo_call(ops: Sequence[Op], prefix: str = "") -> tuple[list[str], list[str]]:
    """``KEYS`` and ``ARGV`` of :data:`UNDO_SCRIPT` for ``ops`` (as :func:`undoable` keeps)."""
    keys: list[str] = []
    args: list[str] = []
    for op in ops:
        keys.append(prefix + op.key)
        if isinstance(op, UseOp):
            marked = op.retry_key is not None
            if op.retry_key is not None:
                keys.append(prefix + op.retry_key)
            args.append(f"U {int(op.rides)} {int(marked)}")
        elif isinstance(op, SessionOp):
            if op.content_key is not None:
                keys.append(prefix + op.content_key)
            args.append(f"S {op.session} {int(op.content_key is not None)}")
        else:
            args.append("W")
    return keys, args


def undoable(ops: Sequence[Op]) -> list[Op]:
    """The operations :data:`UNDO_SCRIPT` can give back (uses, sessions and records)."""
    return [op for op in ops if isinstance(op, UseOp | SessionOp | RecordOp)]


def parse_reply(reply: Any) -> tuple[int | None, float | None, str]:
    """An :data:`APPLY_SCRIPT` reply as (index of the refusing op or None, retry-after
    seconds or None, the taken flags: one character per operation, see the script)."""
    denied, retry, flags = reply
    if int(denied):
        return int(denied) - 1, (int(retry) / _MICROS if int(retry) >= 0 else None), ""
    return None, None, flags.decode() if isinstance(flags, bytes) else str(flags)


def taken_ops(ops: Sequence[Op], flags: str) -> list[tuple[int, Op]]:
    """The operations the flags say took something, with their index (a ridden use marked)."""
    taken: list[tuple[int, Op]] = []
    for index, (op, flag) in enumerate(zip(ops, flags, strict=False)):
        if flag == "1":
            taken.append((index, op))
        elif flag == "r" and isinstance(op, UseOp):
            taken.append((index, replace(op, rides=True)))
    return taken


def read_outcome(reply: Any, ops: Sequence[Op]) -> Outcome:
    """The :class:`Outcome` of an :data:`APPLY_SCRIPT` reply for ``ops``."""
    denied, retry_after, flags = parse_reply(reply)
    if denied is not None:
        return Outcome(denied, retry_after)
    return Outcome(taken=tuple(op for _, op in taken_ops(ops, flags)))


def read_record(value: Any, now: float) -> Record | None:
    """A record's stored value (``"started until payload"``, microseconds) if live at ``now``."""
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    started, _, rest = text.partition(" ")
    until, _, payload = rest.partition(" ")
    if not (started.isdigit() and until.isdigit()) or int(until) <= _micros(now):
        return None
    return Record(int(started) / _MICROS, int(until) / _MICROS, payload)
