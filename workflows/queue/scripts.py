"""The queue's atomic steps, as Lua scripts run inside the server.

Each step that reads a value and writes depending on it (a state change that must not
race a cancel, an item result that must be written once, a retry that must be queued
once) is one script, so two workers or a worker and a client can never interleave
inside it. Scripts take every key through ``KEYS`` (all built in :mod:`keys`).
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
# ARGV: item index, "completed" or "failed", the output line, now.
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
# dead-letter. KEYS: job hash, state counts, stream, delayed set, dead stream.
# ARGV: group, entry id, job id, action ("ack" | "retry" | "dead"), now, due time, error.
# retry: the job goes back to queued (if still in progress) and waits in the delayed set.
# dead: the job fails (unless already final) and a dead-letter entry is added.
SETTLE = """
local action = ARGV[4]
local status = redis.call('HGET', KEYS[1], 'status')
if action == 'retry' and status == 'in_progress' then
  redis.call('HSET', KEYS[1], 'status', 'queued', 'error', ARGV[7])
  redis.call('HINCRBY', KEYS[2], 'in_progress', -1)
  redis.call('HINCRBY', KEYS[2], 'queued', 1)
  redis.call('ZADD', KEYS[4], ARGV[6], ARGV[3])
elseif action == 'dead' and status and status ~= 'completed' and status ~= 'failed'
    and status ~= 'cancelled' and status ~= 'expired' then
  redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[7])
  redis.call('HSETNX', KEYS[1], 'failed_at', ARGV[5])
  redis.call('HINCRBY', KEYS[2], status, -1)
  redis.call('HINCRBY', KEYS[2], 'failed', 1)
  local tenant = redis.call('HGET', KEYS[1], 'tenant') or ''
  local attempts = redis.call('HGET', KEYS[1], 'attempts') or '0'
  redis.call('XADD', KEYS[5], '*', 'job', ARGV[3], 'tenant', tenant, 'attempts', attempts,
             'error', ARGV[7], 'at', ARGV[5])
end
redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[3], ARGV[2])
return status or false
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
