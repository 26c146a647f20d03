package cluster

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Do runs op on the coordinator's Redis client under its fail-fast rules:
// while degraded, and until the next probe, it returns ErrUnavailable without
// touching the network; op's context is bounded by opTimeout; a transport
// failure of op marks Redis down and comes back wrapping ErrUnavailable, and
// an answer (redis.Nil included) marks it up again.
//
// It is for packages that keep data of their own in the cluster's Redis (the
// mirroring engine's policies and jobs): one client, one degraded state and
// one log line per outage for the whole replica. op should return only what
// the client returned, so that any other error is not taken for an outage.
func (r *Redis) Do(ctx context.Context, op func(ctx context.Context, c redis.UniversalClient) error) error {
	opCtx, cancel, err := r.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	return r.result(opCtx, op(opCtx, r.client))
}
