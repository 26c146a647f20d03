package cluster

import "github.com/redis/go-redis/v9"

// The serving sets live under the hash tag {serving}, so that the scripts,
// which reach replica keys they compute from the registry's members, stay in
// one slot of a Redis Cluster.
const (
	servingReplicasKey = Prefix + "{serving}:replicas" // a set: the ids of replicas that published one
	servingSetPrefix   = Prefix + "{serving}:r:"       // + replica id: a set of digests, expiring
)

// Replace this replica's set (KEYS[2]) by the digests ARGV[3..] with expiry
// ARGV[2] ms, and list it in the registry (KEYS[1]) as ARGV[1]; no digests:
// delete it and leave the registry. Atomic, so a reader never sees half a
// set.
var publishServingScript = redis.NewScript(`
redis.call("DEL", KEYS[2])
if #ARGV < 3 then
  redis.call("SREM", KEYS[1], ARGV[1])
  return 0
end
for i = 3, #ARGV, 1000 do
  redis.call("SADD", KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call("PEXPIRE", KEYS[2], ARGV[2])
redis.call("SADD", KEYS[1], ARGV[1])
return 1`)

// Return those of the digests ARGV[2..] that a live replica's set holds
// (sets are ARGV[1] .. id for each id in the registry KEYS[1]); ids whose set
// expired (the replica died or stopped serving) leave the registry.
var servedScript = redis.NewScript(`
local served, found = {}, {}
for _, id in ipairs(redis.call("SMEMBERS", KEYS[1])) do
  local k = ARGV[1] .. id
  if redis.call("EXISTS", k) == 0 then
    redis.call("SREM", KEYS[1], id)
  else
    for i = 2, #ARGV do
      if not found[i] and redis.call("SISMEMBER", k, ARGV[i]) == 1 then
        found[i] = true
        served[#served + 1] = ARGV[i]
      end
    end
  end
end
return served`)
