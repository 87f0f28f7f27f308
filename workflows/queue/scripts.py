"""The queue's atomic steps, as Lua scripts run inside the server.

Each step that reads a value and writes depending on it (a state change that must not
race a cancel, an item result that must be written once, a failed run that must be charged
to its item once, a retry that must be queued once) is one script, so two workers or a
worker and a client can never interleave inside it. Scripts take every key through ``KEYS`` (all built in :mod:`keys`).
"""

from __future__ import annotations

from typing import Any

import redis

# Compare-and-set of a job's state. KEYS: job hash, state counts.
# ARGV: new state, now, then the states it may move from. Returns the old state or false.
# The first time a job enters a state, "<state>_at" is stamped (a retry keeps the first).
TRANSITION = """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return false end
for i = 3, #ARGV do
  if cur == ARGV[i] then
    redis.call('HSET', KEYS[1], 'status', ARGV[1])
    redis.call('HSETNX', KEYS[1], ARGV[1] .. '_at', ARGV[2])
    redis.call('HINCRBY', KEYS[2], cur, -1)
    redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
    return cur
  end
end
return false
"""

# Create a job unless the tenant's idempotency key already names one.
# KEYS: idempotency key (or "" for none), job hash, tenant's job set, stream, state counts,
# items list (written before, with a short expiry that this script lifts).
# ARGV: job id, creation time (the tenant set's score), idempotency TTL seconds, then
# field/value pairs of the hash.
# Returns the id of the job that stands for this submission (new or existing).
SUBMIT = """
if KEYS[1] ~= '' then
  local existing = redis.call('GET', KEYS[1])
  if existing then return existing end
end
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
if KEYS[1] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
end
redis.call('PERSIST', KEYS[6])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('HINCRBY', KEYS[5], 'queued', 1)
redis.call('XADD', KEYS[4], '*', 'job', ARGV[1])
return ARGV[1]
"""

# Record one item's outcome exactly once. KEYS: results hash, errors hash, job hash.
# ARGV: item index, "completed" or "failed", the output line, now, and the item's findings left
# for review (compliance rewrites not applied; 0 for every other item), counted with the outcome.
# Returns 1 if this call wrote it, 0 if the item already had an outcome.
RECORD = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return 0
end
if ARGV[2] == 'completed' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
else
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
end
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
if tonumber(ARGV[5] or '0') > 0 then
  redis.call('HINCRBY', KEYS[3], 'review_items', 1)
  redis.call('HINCRBY', KEYS[3], 'review_findings', ARGV[5])
end
redis.call('HSET', KEYS[3], 'updated_at', ARGV[4])
return 1
"""

# Renew a lease: reset the idle time of a pending entry, only if this consumer still owns
# it (a plain XCLAIM would steal it back from a worker that already reclaimed it).
# KEYS: stream. ARGV: group, consumer, entry id. Returns 1 if renewed, 0 if the lease is lost.
RENEW = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #p == 0 then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
"""

# Move retries that came due back to the stream; each exactly once, even if several
# workers run this at the same moment. KEYS: delayed set, stream. ARGV: now, most to move.
RELEASE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('XADD', KEYS[2], '*', 'job', id)
end
return #due
"""

# Settle a delivery: acknowledge and delete the stream entry, after an optional retry or
# release. KEYS: job hash, state counts, stream, delayed set.
# ARGV: group, entry id, job id, action ("ack" | "retry" | "release"), due time, error.
# retry: the job goes back to queued (if still in progress) and waits in the delayed set.
# release (a worker stopping gracefully): no run is charged (the ``running`` marker goes),
# the delivery does not count as an attempt, and the job goes back to the stream at once
# (queued again if it was in progress); ARGV[6] is "counted" if the delivery was counted.
SETTLE = """
local status = redis.call('HGET', KEYS[1], 'status')
if ARGV[4] == 'retry' and status == 'in_progress' then
  redis.call('HSET', KEYS[1], 'status', 'queued', 'error', ARGV[6])
  redis.call('HINCRBY', KEYS[2], 'in_progress', -1)
  redis.call('HINCRBY', KEYS[2], 'queued', 1)
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[3])
elseif ARGV[4] == 'release' and (status == 'in_progress' or status == 'cancelling') then
  redis.call('HDEL', KEYS[1], 'running')
  if ARGV[6] == 'counted' then redis.call('HINCRBY', KEYS[1], 'attempts', -1) end
  if status == 'in_progress' then
    redis.call('HSET', KEYS[1], 'status', 'queued')
    redis.call('HINCRBY', KEYS[2], 'in_progress', -1)
    redis.call('HINCRBY', KEYS[2], 'queued', 1)
  end
  redis.call('XADD', KEYS[3], '*', 'job', ARGV[3])
end
redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[3], ARGV[2])
return status or false
"""

# Charge one failed run to an item (it raised, or its worker died while running it), once,
# and spend the item when its runs are used up.
# KEYS: job hash, results hash, errors hash, dead stream.
# ARGV: job id, item index, the job's ``running`` marker of that run, most failed runs, the
# error line, the error message, the item's custom_id, now.
# Charged only while the marker is still there (two deliveries that both find a dead run
# charge it once: the first clears it) and the item has no outcome yet. Returns the item's
# failed runs (0: nothing charged), negated when this charge spent the item: then its error
# line is written (exactly once, as RECORD would), counted as failed, and dead-lettered.
CHARGE = """
if redis.call('HGET', KEYS[1], 'running') ~= ARGV[3] then return 0 end
redis.call('HDEL', KEYS[1], 'running')
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 or redis.call('HEXISTS', KEYS[3], ARGV[2]) == 1 then
  return 0
end
local runs = redis.call('HINCRBY', KEYS[1], 'failures:' .. ARGV[2], 1)
if runs < tonumber(ARGV[4]) then return runs end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[5])
redis.call('HINCRBY', KEYS[1], 'failed', 1)
redis.call('HSET', KEYS[1], 'updated_at', ARGV[8])
local tenant = redis.call('HGET', KEYS[1], 'tenant') or ''
redis.call('XADD', KEYS[4], '*', 'job', ARGV[1], 'tenant', tenant, 'item', ARGV[2], 'custom_id', ARGV[7],
           'attempts', runs, 'error', ARGV[6], 'at', ARGV[8])
return -runs
"""


class Scripts:
    """The scripts registered on one client (redis-py reloads them after a server restart)."""

    def __init__(self, r: redis.Redis) -> None:
        self.transition: Any = r.register_script(TRANSITION)
        self.submit: Any = r.register_script(SUBMIT)
        self.record: Any = r.register_script(RECORD)
        self.renew: Any = r.register_script(RENEW)
        self.release_due: Any = r.register_script(RELEASE_DUE)
        self.settle: Any = r.register_script(SETTLE)
        self.charge: Any = r.register_script(CHARGE)
