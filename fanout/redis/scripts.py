"""Every Lua script of the tier, in one place. Each touches keys of one hash tag only (the
workers' leases, a partition's stream and routed seqs, a user shard's hash), so each runs on
one Redis Cluster node."""

from __future__ import annotations

# A worker's lease round, in one call. KEYS[1]: the workers' heartbeats; KEYS[2]: the sweep
# flag; KEYS[3 + p]: partition p's lease. ARGV: worker id, now (ms), lease TTL (ms), then
# comma-separated partitions: held by a running task (renewed when still this worker's), held
# by a task that ended (released, then tried again), to try (taken when free, or when still
# this worker's after a round that failed part way), and given back lately (not taken while
# the worker holds its fair share). Up to the fair share (partitions / workers heard from
# within a TTL) any free partition is taken; above it only those not given back lately, i.e.
# orphans. Returns the partitions renewed, those taken, how many workers are alive, and the
# sweep flag (read and cleared when this worker holds partition 0).
ROUND = """
local id, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now, id)
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, now - 20 * ttl)
local alive = redis.call('ZCOUNT', KEYS[1], now - ttl, '+inf')
local share = math.ceil((#KEYS - 2) / math.max(1, alive))
for p in string.gmatch(ARGV[5], '%d+') do
  local key = KEYS[3 + tonumber(p)]
  if redis.call('GET', key) == id then redis.call('DEL', key) end
end
local renewed, taken, zero = {}, {}, false
for p in string.gmatch(ARGV[4], '%d+') do
  local key = KEYS[3 + tonumber(p)]
  if redis.call('GET', key) == id then
    redis.call('PEXPIRE', key, ttl)
    renewed[#renewed + 1] = tonumber(p)
    if p == '0' then zero = true end
  end
end
local given = {}
for p in string.gmatch(ARGV[7], '%d+') do given[p] = true end
local held = #renewed
for p in string.gmatch(ARGV[6], '%d+') do
  local key, got = KEYS[3 + tonumber(p)], false
  if redis.call('GET', key) == id then
    got = redis.call('PEXPIRE', key, ttl) == 1
  elseif held < share or not given[p] then
    got = redis.call('SET', key, id, 'NX', 'PX', ttl) and true or false
  end
  if got then
    taken[#taken + 1] = tonumber(p)
    held = held + 1
    if p == '0' then zero = true end
  end
end
local flag = 0
if zero and redis.call('GETDEL', KEYS[2]) then flag = 1 end
return {renewed, taken, alive, flag}
"""

# KEYS[1]: a partition's stream; KEYS[2]: its routed seqs. ARGV[1]: the consumer group,
# ARGV[2]: n, then n entry ids to acknowledge, then room id, seq pairs. Acknowledges the entries
# and raises each room's routed seq to the given one (never lowers it: a late writer, such as
# a holder that lost its lease, cannot take it back). One call per handled read.
ROUTED = """
local n = tonumber(ARGV[2])
local acked = 0
for first = 3, n + 2, 1000 do
  local last = math.min(first + 999, n + 2)
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, first, last))
end
for i = n + 3, #ARGV - 1, 2 do
  local seq = tonumber(ARGV[i + 1])
  if seq > tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0') then
    redis.call('HSET', KEYS[2], ARGV[i], seq)
  end
end
return acked
"""

# KEYS[1]: a partition's lease; ARGV[1]: holder id. Releases only the holder's own lease.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS[1]: a user shard's hash; ARGV[1]: comma-separated user ids. Returns a flat list of
# gateway id, comma-separated ids of those users it holds, for each gateway holding any.
LOCATE = """
local ids = {}
for id in string.gmatch(ARGV[1], '[^,]+') do ids[#ids + 1] = id end
local order, groups = {}, {}
for first = 1, #ids, 4000 do
  local last = math.min(first + 3999, #ids)
  local values = redis.call('HMGET', KEYS[1], unpack(ids, first, last))
  for j = 1, #values do
    local value = values[j]
    if value then
      for gateway in string.gmatch(value, '%S+') do
        local group = groups[gateway]
        if not group then
          group = {}
          groups[gateway] = group
          order[#order + 1] = gateway
        end
        group[#group + 1] = ids[first + j - 1]
      end
    end
  end
end
local reply = {}
for k = 1, #order do
  reply[#reply + 1] = order[k]
  reply[#reply + 1] = table.concat(groups[order[k]], ',')
end
return reply
"""

# KEYS[1]: a user shard's hash; ARGV: user id, gateway id. Returns how many other gateways
# held the user before.
REGISTER = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return 0 end
local n = 0
for g in string.gmatch(cur, '%S+') do
  if g == ARGV[2] then return n end
  n = n + 1
end
redis.call('HSET', KEYS[1], ARGV[1], cur .. ' ' .. ARGV[2])
return n
"""

# The reverse; returns how many gateways still hold the user.
UNREGISTER = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local out = {}
for g in string.gmatch(cur, '%S+') do
  if g ~= ARGV[2] then table.insert(out, g) end
end
if #out == 0 then redis.call('HDEL', KEYS[1], ARGV[1]) return 0 end
redis.call('HSET', KEYS[1], ARGV[1], table.concat(out, ' '))
return #out
"""
