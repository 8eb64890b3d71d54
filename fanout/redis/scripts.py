"""Every Lua script of the tier, in one place. Each touches keys of one hash tag only (a
partition's lease, a user shard's hash), so each runs on one Redis Cluster node."""

from __future__ import annotations

# KEYS[1]: a partition's lease; ARGV: holder id, TTL in ms. Renews only the holder's own lease.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
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
