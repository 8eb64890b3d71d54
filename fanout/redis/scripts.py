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

# KEYS[1]: a user shard's hash; ARGV: user id, gateway id. Removes the gateway from the user's
# entry; returns how many gateways still hold the user. With KEYS[2] (the shard's
# connection counts) the gateway's count goes too; with KEYS[3] (the shard's pending offlines)
# and ARGV[3], a user held by no gateway any more gets ARGV[3] as its pending offline's token.
UNREGISTER = """
if KEYS[2] then redis.call('HDEL', KEYS[2], ARGV[1] .. ' ' .. ARGV[2]) end
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local out = {}
for g in string.gmatch(cur or '', '%S+') do
  if g ~= ARGV[2] then table.insert(out, g) end
end
if #out == 0 then
  if cur then redis.call('HDEL', KEYS[1], ARGV[1]) end
  if KEYS[3] and ARGV[3] then redis.call('HSET', KEYS[3], ARGV[1], ARGV[3]) end
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], table.concat(out, ' '))
return #out
"""

# A connection admitted under the per-user cap, and the gateway registered, in one call.
# KEYS[1]: a user shard's hash (user -> gateways); KEYS[2]: its connection counts ("user gateway"
# -> connections there); KEYS[3]: its pending offlines (user -> token). ARGV: user id, gateway
# id, the gateway's connections of the user with the new one, the cap (0: none), then the
# space-separated live gateways (a gateway not among them counts for nothing). Returns
# {-1, 0} when the live gateways would hold more than the cap (nothing is written), else
# {other gateways holding the user, 1 when the user came back while an offline was pending}.
ADMIT = """
local user, gw, here, cap = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local live = {}
for g in string.gmatch(ARGV[5] or '', '%S+') do live[g] = true end
local cur = redis.call('HGET', KEYS[1], user)
local others, total, listed = 0, here, false
for g in string.gmatch(cur or '', '%S+') do
  if g == gw then
    listed = true
  else
    others = others + 1
    if live[g] then
      total = total + tonumber(redis.call('HGET', KEYS[2], user .. ' ' .. g) or '1')
    end
  end
end
if cap > 0 and total > cap then return {-1, 0} end
redis.call('HSET', KEYS[2], user .. ' ' .. gw, here)
local resumed = 0
if not listed then
  if cur then
    redis.call('HSET', KEYS[1], user, cur .. ' ' .. gw)
  else
    redis.call('HSET', KEYS[1], user, gw)
  end
  if others == 0 then resumed = redis.call('HDEL', KEYS[3], user) end
end
return {others, resumed}
"""

# KEYS[1]: a user shard's hash; KEYS[3]: its pending offlines. ARGV: user id, token, then the
# space-separated live gateways. 1 (and the pending offline taken) when it is still the token's
# and no live gateway holds the user; else 0.
OFFLINE = """
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
local live = {}
for g in string.gmatch(ARGV[3] or '', '%S+') do live[g] = true end
for g in string.gmatch(redis.call('HGET', KEYS[1], ARGV[1]) or '', '%S+') do
  if live[g] then return 0 end
end
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""
