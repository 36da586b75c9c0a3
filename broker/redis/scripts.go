package redis

import goredis "github.com/redis/go-redis/v9"

// The Lua scripts. Each touches the keys of one hash tag only, so it runs on
// one Redis Cluster slot, and Redis runs scripts one at a time: a key's
// seqs, history and pub/sub messages change together, in one order.
//
// Lua turns numbers into strings with %.14g: seqs and Unix milliseconds stay
// exact below 10^14.

// luaHelpers is prepended to scripts that need them.
const luaHelpers = `
local function nowms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- trim bounds a history stream by size and age and returns what it holds.
local function trim(k, maxlen, ttl)
  if maxlen <= 0 then
    redis.call('DEL', k)
    return 0
  end
  redis.call('XTRIM', k, 'MAXLEN', maxlen)
  if ttl > 0 then
    redis.call('XTRIM', k, 'MINID', nowms() - ttl)
  end
  return redis.call('XLEN', k)
end
-- expire sets a key's time to live, or removes it when ttl is 0 (no limit).
local function expire(k, ttl)
  if ttl > 0 then
    redis.call('PEXPIRE', k, ttl)
  else
    redis.call('PERSIST', k)
  end
end
-- epoch returns the key's epoch and newest seq, creating the epoch from
-- the candidate when the meta hash is gone. A new epoch starts a new
-- history: a stream left from an older one is deleted.
local function epoch(meta, stream, candidate)
  local m = redis.call('HMGET', meta, 'e', 's')
  if m[1] then
    return m[1], tonumber(m[2] or '0')
  end
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'e', candidate, 's', 0)
  return candidate, 0
end
`

// publishScript assigns the next seq, appends the message to the history
// and publishes it on the key's channel.
//
// KEYS: meta, stream. ARGV: candidate epoch, event, data, history size,
// history TTL ms (0: none), meta TTL ms (0: none), channel.
// Returns {epoch, seq, ts}; ts is the stream ID's milliseconds, the store's
// clock.
var publishScript = goredis.NewScript(luaHelpers + `
local e = epoch(KEYS[1], KEYS[2], ARGV[1])
local s = redis.call('HINCRBY', KEYS[1], 's', 1)
local maxlen, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local ts
if maxlen > 0 then
  local id = redis.call('XADD', KEYS[2], 'MAXLEN', maxlen, '*', 's', s, 'e', ARGV[2], 'd', ARGV[3])
  ts = string.match(id, '^%d+')
  if ttl > 0 then
    redis.call('XTRIM', KEYS[2], 'MINID', tonumber(ts) - ttl)
  end
  expire(KEYS[2], ttl)
else
  redis.call('DEL', KEYS[2])
  ts = tostring(nowms())
end
expire(KEYS[1], tonumber(ARGV[6]))
redis.call('PUBLISH', ARGV[7], 'm\n' .. e .. '\n' .. s .. '\n' .. ts .. '\n' .. ARGV[2] .. '\n' .. ARGV[3])
return {e, s, ts}
`)

// syncScript reads a key's state for a tracking node, creating its epoch
// when it has none.
//
// KEYS: meta, stream. ARGV: candidate epoch, epoch asked, seq asked,
// history size, history TTL ms, meta TTL ms.
// Returns {epoch, seq, held, entries}: entries newest first, those after
// the seq asked when the epoch is the one asked, else every held one.
var syncScript = goredis.NewScript(luaHelpers + `
local e, s = epoch(KEYS[1], KEYS[2], ARGV[1])
expire(KEYS[1], tonumber(ARGV[6]))
local held = trim(KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[5]))
local n = held
if e == ARGV[2] then
  n = math.min(math.max(s - tonumber(ARGV[3]), 0), held)
end
local entries = {}
if n > 0 then
  entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', n)
end
return {e, s, held, entries}
`)

// stateScript reads a key's state without creating it.
//
// KEYS: meta, stream. ARGV: history size, history TTL ms.
// Returns {epoch, seq, held}, or nil when the key has no state.
var stateScript = goredis.NewScript(luaHelpers + `
local m = redis.call('HMGET', KEYS[1], 'e', 's')
if not m[1] then
  return false
end
return {m[1], tonumber(m[2] or '0'), trim(KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]))}
`)

// dropScript deletes a key's state and tells its trackers.
//
// KEYS: meta, stream. ARGV: history size, history TTL ms, channel.
// Returns {epoch, seq, held} as they were, or nil when the key had no state.
var dropScript = goredis.NewScript(luaHelpers + `
local m = redis.call('HMGET', KEYS[1], 'e', 's')
local held = 0
if m[1] then
  held = trim(KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]))
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('PUBLISH', ARGV[3], 'd\n' .. (m[1] or ''))
if not m[1] then
  return false
end
return {m[1], tonumber(m[2] or '0'), held}
`)

// luaExpireNodes removes registry entries whose time ran out.
const luaExpireNodes = `
local now = nowms()
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
for _, id in ipairs(dead) do
  redis.call('HDEL', KEYS[2], id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
`

// announceScript records a node until now+ttl.
//
// KEYS: expiry zset, node hash. ARGV: id, node JSON, ttl ms.
var announceScript = goredis.NewScript(luaHelpers + luaExpireNodes + `
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
-- The registry outlives its longest-lived node, and no more once every
-- node is gone.
for _, k in ipairs(KEYS) do
  if redis.call('PTTL', k) < ttl then
    redis.call('PEXPIRE', k, ttl)
  end
end
return 1
`)

// nodesScript lists the live nodes' JSON.
//
// KEYS: expiry zset, node hash.
var nodesScript = goredis.NewScript(luaHelpers + luaExpireNodes + `
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local j = redis.call('HGET', KEYS[2], id)
  if j then
    out[#out + 1] = j
  end
end
return out
`)

// leaveScript removes a node.
//
// KEYS: expiry zset, node hash. ARGV: id.
var leaveScript = goredis.NewScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
`)
