"""The Lua scripts of the Redis queue: each step of a message's life in one atomic server call.

A queue ``Q`` is Celery's list ``Q`` (the intake: kombu pushes there, ``send_task`` included) and
Tornado's keys beside it: ``tornado:Q:vis`` (a sorted set: message number -> when it is visible, in
ms of the server's clock), ``tornado:Q:body`` and ``tornado:Q:count`` (hashes: the raw message and
its receive count) and ``tornado:Q:seq`` (the numbering). ``tornado:queues`` holds each queue's
settings. Message numbers are zero-padded, so equal times keep the order of arrival.
"""

from __future__ import annotations

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_KNOWN = """
local settings = redis.call('HGET', KEYS[1], ARGV[1])
if not settings then return redis.error_reply('TORNADO_MISSING_QUEUE') end
"""

#: KEYS: settings, intake, vis, body, seq. ARGV: queue, then (delay ms, raw) pairs.
SEND = (
    _NOW
    + _KNOWN
    + """
for i = 2, #ARGV, 2 do
  local delay = tonumber(ARGV[i])
  if delay <= 0 then
    redis.call('LPUSH', KEYS[2], ARGV[i + 1])
  else
    local id = string.format('%015d', redis.call('INCR', KEYS[5]))
    redis.call('HSET', KEYS[4], id, ARGV[i + 1])
    redis.call('ZADD', KEYS[3], now + delay, id)
  end
end
return 0
"""
)

#: KEYS: settings, intake, vis, body, count, seq. ARGV: queue, most, visibility ms.
#: Returns (number, receive count, raw) triples; a message past its receives goes instead onto the list
#: of the dead-letter queue its settings name (a key the script derives: one Redis server, not a cluster).
RECEIVE = (
    _NOW
    + _KNOWN
    + """
local settings = cjson.decode(settings)
local max_receives, dead_letters = tonumber(settings['max_receive_count']), settings['dead_letter']
for i = 1, 1000 do
  local raw = redis.call('RPOP', KEYS[2])
  if not raw then break end
  local id = string.format('%015d', redis.call('INCR', KEYS[6]))
  redis.call('HSET', KEYS[4], id, raw)
  redis.call('ZADD', KEYS[3], now, id)
end
local most, out = tonumber(ARGV[2]), {}
while #out < most * 3 do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, most - #out / 3)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local count = redis.call('HINCRBY', KEYS[5], id, 1)
    local raw = redis.call('HGET', KEYS[4], id)
    if raw and max_receives > 0 and count > max_receives then
      redis.call('LPUSH', dead_letters, raw)
    end
    if (not raw) or (max_receives > 0 and count > max_receives) then
      redis.call('ZREM', KEYS[3], id)
      redis.call('HDEL', KEYS[4], id)
      redis.call('HDEL', KEYS[5], id)
    else
      redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), id)
      table.insert(out, id)
      table.insert(out, count)
      table.insert(out, raw)
    end
  end
end
return out
"""
)

#: KEYS: vis, body, count. ARGV: (number, receive count) pairs; stale receipts are ignored.
DELETE = """
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[3], ARGV[i]) == ARGV[i + 1] then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('HDEL', KEYS[3], ARGV[i])
  end
end
return 0
"""

#: KEYS: vis, count. ARGV: number, receive count, ms from now.
CHANGE_VISIBILITY = (
    _NOW
    + """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] or not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return redis.error_reply('TORNADO_STALE_RECEIPT')
end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[3]), ARGV[1])
return 0
"""
)

#: KEYS: settings, intake, vis, count. ARGV: queue. Returns visible, in flight, delayed.
DEPTH = (
    _NOW
    + _KNOWN
    + """
local visible = redis.call('LLEN', KEYS[2]) + redis.call('ZCOUNT', KEYS[3], '-inf', now)
local in_flight, delayed = 0, 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. now, '+inf')) do
  if redis.call('HEXISTS', KEYS[4], id) == 1 then in_flight = in_flight + 1 else delayed = delayed + 1 end
end
return {visible, in_flight, delayed}
"""
)
