package mirror

import "github.com/redis/go-redis/v9"

// The Redis store's scripts. Each runs atomically in Redis: that is what
// makes a claim exclusive and an update a compare-and-set. Lease deadlines
// are in Redis's own clock (TIME), so replicas' clocks need not agree; due
// times are in the job clock of the replica that scheduled the job.

// casScript sets field ARGV[1] of hash KEYS[1] to ARGV[3] if it is still
// ARGV[2]: 1 when set, 0 when it changed meanwhile, -1 when it is gone.
var casScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return -1 end
if cur ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1`)

// jobUpdateScript is a compare-and-set of one job that keeps the indexes in
// step with its new status.
//
//	KEYS: jobs, due, running, leases, finished
//	ARGV: id, old JSON, new JSON, new status, due score (ms), lease token
//	      ('' for none), finished score (ms)
//
// It answers 'ok', 'gone' (no such job), 'lost' (a lease was given and is not
// the job's lease any more) or 'changed' (the job changed meanwhile). A job
// that waits again is due at its score and holds no lease. A job that
// finished leaves the due index for the finished one; it gives up its lease
// when the holder finishes it, or when nobody holds it — a job cancelled
// while running elsewhere keeps its lease until that replica has stopped it.
var jobUpdateScript = redis.NewScript(`
local id = ARGV[1]
local cur = redis.call('HGET', KEYS[1], id)
if not cur then return 'gone' end
local holder = redis.call('HGET', KEYS[4], id)
if ARGV[6] ~= '' and holder ~= ARGV[6] then return 'lost' end
if cur ~= ARGV[2] then return 'changed' end
redis.call('HSET', KEYS[1], id, ARGV[3])
local st = ARGV[4]
if st == 'waiting' then
  redis.call('ZADD', KEYS[2], ARGV[5], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
  redis.call('ZREM', KEYS[5], id)
elseif st ~= 'running' then
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZADD', KEYS[5], ARGV[7], id)
  if ARGV[6] ~= '' or not holder then
    redis.call('ZREM', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
  end
end
return 'ok'`)

// claimScript first makes the jobs whose lease expired wait again (their
// replica died, or lost Redis for longer than the lease), then claims the
// due job with the lowest score for ARGV[3].
//
//	KEYS: jobs, due, running, leases
//	ARGV: now (ms, job clock), lease ttl (ms), token, now as JSON time
//
// It answers {the claimed job's JSON, the next due score, requeued ids...},
// the first two empty when there is none.
var claimScript = redis.NewScript(`
local t = redis.call('TIME')
local srv = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local requeued = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', srv, 'LIMIT', 0, 100)) do
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
  local v = redis.call('HGET', KEYS[1], id)
  if v then
    local j = cjson.decode(v)
    if j.status == 'running' then
      j.status = 'waiting'
      j.lastUpdated = ARGV[4]
      redis.call('HSET', KEYS[1], id, cjson.encode(j))
      redis.call('ZADD', KEYS[2], ARGV[1], id)
      table.insert(requeued, id)
    end
  end
end
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 1)
if #due == 0 then
  local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {'', nxt[2] or '', unpack(requeued)}
end
local id = due[1]
redis.call('ZREM', KEYS[2], id)
local v = redis.call('HGET', KEYS[1], id)
if not v then return {'', ARGV[1], unpack(requeued)} end
local j = cjson.decode(v)
if j.status ~= 'waiting' then return {'', ARGV[1], unpack(requeued)} end
j.status = 'running'
j.lastUpdated = ARGV[4]
local nv = cjson.encode(j)
redis.call('HSET', KEYS[1], id, nv)
redis.call('ZADD', KEYS[3], srv + tonumber(ARGV[2]), id)
redis.call('HSET', KEYS[4], id, ARGV[3])
return {nv, '', unpack(requeued)}`)

// renewScript extends the lease of job ARGV[1] by ARGV[3] ms if ARGV[2] still
// holds it, and answers the job's status, or an empty string when the lease
// is not ARGV[2]'s.
//
//	KEYS: leases, running, jobs
var renewScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return '' end
local t = redis.call('TIME')
local srv = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], srv + tonumber(ARGV[3]), ARGV[1])
local v = redis.call('HGET', KEYS[3], ARGV[1])
if not v then return '' end
return cjson.decode(v).status`)
