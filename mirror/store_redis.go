package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ocimirror/proxy/cluster"
)

// policyUpdateTries bounds the compare-and-set rounds of one update that
// other replicas keep changing under it.
const policyUpdateTries = 20

// redisStore keeps policies, jobs and job logs in the cluster's Redis, for
// every replica. It goes through the coordinator (cluster.Redis.Do): the
// same client, the same fail-fast degraded mode, and errors wrapping
// cluster.ErrUnavailable when Redis cannot be reached.
//
// Keys (all with the hash tag {mirror}, so that one script's keys share a
// slot):
//
//	policies        hash: policy id -> storedPolicy JSON
//	jobs            hash: job id -> Job JSON
//	jobs:due        zset: waiting job ids by ScheduledAt (unix ms, job clock)
//	jobs:running    zset: claimed job ids by lease deadline (unix ms, Redis clock)
//	jobs:leases     hash: claimed job id -> the claim's random token
//	jobs:finished   zset: finished job ids by when they finished (pruning)
//	joblog:<id>     list: LogLine JSON
//	slot:<name>     string, SET NX PX: a schedule slot taken
type redisStore struct {
	coord *cluster.Redis
	k     redisKeys
}

type redisKeys struct {
	policies, jobs, due, running, leases, finished, prefix string
}

// NewRedisStore returns the store in the Redis of coord, shared by every
// replica that uses the same Redis (and database).
func NewRedisStore(coord *cluster.Redis) Store {
	p := cluster.Prefix + "{mirror}:"
	return &redisStore{coord: coord, k: redisKeys{
		policies: p + "policies", jobs: p + "jobs", due: p + "jobs:due", running: p + "jobs:running",
		leases: p + "jobs:leases", finished: p + "jobs:finished", prefix: p,
	}}
}

func (k redisKeys) log(id string) string   { return k.prefix + "joblog:" + id }
func (k redisKeys) slot(key string) string { return k.prefix + "slot:" + key }

// Shared is true.
func (s *redisStore) Shared() bool { return true }

// firstInSlot takes the slot with SET NX PX: one replica wins it.
func (s *redisStore) firstInSlot(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	var ok bool
	err := s.coord.Do(ctx, func(ctx context.Context, c redis.UniversalClient) (err error) {
		ok, err = c.SetNX(ctx, s.k.slot(key), "1", ttl).Result()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("take schedule slot %s: %w", key, err)
	}
	return ok, nil
}

func (s *redisStore) addPolicy(ctx context.Context, sp storedPolicy) (bool, error) {
	v, err := json.Marshal(sp)
	if err != nil {
		return false, err
	}
	var added bool
	err = s.coord.Do(ctx, func(ctx context.Context, c redis.UniversalClient) (err error) {
		added, err = c.HSetNX(ctx, s.k.policies, sp.Policy.ID, v).Result()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store mirroring policy %s: %w", sp.Policy.ID, err)
	}
	return added, nil
}

// rawPolicy returns the stored JSON of policy id.
func (s *redisStore) rawPolicy(ctx context.Context, id string) (string, error) {
	var v string
	err := s.coord.Do(ctx, func(ctx context.Context, c redis.UniversalClient) (err error) {
		v, err = c.HGet(ctx, s.k.policies, id).Result()
		return err
	})
	if errors.Is(err, redis.Nil) {
		return "", ErrPolicyNotFound
	}
	if err != nil {
		return "", fmt.Errorf("read mirroring policy %s: %w", id, err)
	}
	return v, nil
}

func (s *redisStore) getPolicy(ctx context.Context, id string) (storedPolicy, error) {
	var sp storedPolicy
	v, err := s.rawPolicy(ctx, id)
	if err != nil {
		return sp, err
	}
	if err := json.Unmarshal([]byte(v), &sp); err != nil {
		return sp, fmt.Errorf("mirroring policy %s: %w", id, err)
	}
	return sp, nil
}

// updatePolicy reads, changes and writes back policy id with a
// compare-and-set, again from the start when another replica changed it
// meanwhile.
func (s *redisStore) updatePolicy(ctx context.Context, id string, change func(*storedPolicy) error) (storedPolicy, error) {
	for range policyUpdateTries {
		old, err := s.rawPolicy(ctx, id)
		if err != nil {
			return storedPolicy{}, err
		}
		var sp storedPolicy
		if err := json.Unmarshal([]byte(old), &sp); err != nil {
			return sp, fmt.Errorf("mirroring policy %s: %w", id, err)
		}
		if err := change(&sp); err != nil {
			return sp, err
		}
		nv, err := json.Marshal(sp)
		if err != nil {
			return sp, err
		}
		var n int
		err = s.coord.Do(ctx, func(ctx context.Context, c redis.UniversalClient) (err error) {
			n, err = casScript.Run(ctx, c, []string{s.k.policies}, id, old, nv).Int()
			return err
		})
		switch {
		case err != nil:
			return sp, fmt.Errorf("update mirroring policy %s: %w", id, err)
		case n < 0:
			return sp, ErrPolicyNotFound
		case n > 0:
			return sp, nil
		}
	}
	return storedPolicy{}, fmt.Errorf("update mirroring policy %s: changed by others %d times in a row", id, policyUpdateTries)
}

func (s *redisStore) deletePolicy(ctx context.Context, id string) error {
	var n int64
	err := s.coord.Do(ctx, func(ctx context.Context, c redis.UniversalClient) (err error) {
		n, err = c.HDel(ctx, s.k.policies, id).Result()
		return err
	})
	if err != nil {
		return fmt.Errorf("delete mirroring policy %s: %w", id, err)
	}
	if n == 0 {
		return ErrPolicyNotFound
	}
	return nil
}

// listPolicies reads every policy and sorts them by id, which is creation
// order.
func (s *redisStore) listPolicies(ctx context.Context, kind Kind, repo string) ([]storedPolicy, error) {
	var all []string
	err := s.coord.Do(ctx, func(ctx context.Context, c redis.UniversalClient) (err error) {
		all, err = c.HVals(ctx, s.k.policies).Result()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list mirroring policies: %w", err)
	}
	var out []storedPolicy
	for _, v := range all {
		if sp, ok := matchPolicy([]byte(v), kind, repo); ok {
			out = append(out, sp)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Policy.ID < out[b].Policy.ID })
	return out, nil
}
