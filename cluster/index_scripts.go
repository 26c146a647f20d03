package cluster

import "github.com/redis/go-redis/v9"

// joinScript returns {generation, last log entry id, its sequence number},
// beginning a generation on an empty state and log when there is none.
// KEYS: gen, state, log, seq; ARGV: a new token.
var joinScript = redis.NewScript(`
local g = redis.call("GET", KEYS[1])
if not g then
  redis.call("DEL", KEYS[2], KEYS[3], KEYS[4])
  redis.call("SET", KEYS[1], ARGV[1])
  g = ARGV[1]
end
local last = redis.call("XREVRANGE", KEYS[3], "+", "-", "COUNT", 1)
if #last == 0 then
  return {g, "0-0", "0"}
end
local f = last[1][2]
for i = 1, #f, 2 do
  if f[i] == "n" then return {g, last[1][1], f[i+1]} end
end
return {g, last[1][1], "0"}`)

// publishScript applies changes to the state and appends them to the log,
// refusing a stale generation. A record or touch replaces the state's entry
// unless that has a later access; a removal deletes it unless it has a later
// access. Access times are 19-digit strings: string order is time order.
// Each log entry gets the next sequence number (field n), by which a reader
// tells whether the trimming of the log passed it.
// KEYS: gen, state, log, seq; ARGV: gen, log length, origin, then per change
// identity, removed ("1"/"0"), access, size, target.
var publishScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) ~= ARGV[1] then
  return redis.error_reply("RESYNC generation changed")
end
for i = 4, #ARGV, 5 do
  local k, r, a, s, t = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4]
  local cur = redis.call("HGET", KEYS[2], k)
  local notLater = (not cur) or string.sub(cur, 1, 19) <= a
  if r == "1" then
    if cur and notLater then redis.call("HDEL", KEYS[2], k) end
  elseif notLater then
    redis.call("HSET", KEYS[2], k, a .. " " .. s .. " " .. t)
  end
  local n = redis.call("INCR", KEYS[4])
  redis.call("XADD", KEYS[3], "MAXLEN", "~", ARGV[2], "*", "n", n, "o", ARGV[3], "k", k, "r", r, "a", a, "s", s, "t", t)
end
return 1`)

// readScript returns {sequence number of the log's first entry ("0": none),
// entries after the cursor}, refusing a stale generation. KEYS: gen, log;
// ARGV: gen, cursor id, count.
var readScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) ~= ARGV[1] then
  return redis.error_reply("RESYNC generation changed")
end
local first = "0"
local e = redis.call("XRANGE", KEYS[2], "-", "+", "COUNT", 1)
if #e > 0 then
  local f = e[1][2]
  for i = 1, #f, 2 do
    if f[i] == "n" then first = f[i+1] end
  end
end
return {first, redis.call("XRANGE", KEYS[2], "(" .. ARGV[2], "+", "COUNT", ARGV[3])}`)
