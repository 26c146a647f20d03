package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/redis/go-redis/v9"
)

// DefaultServingInterval is how often a replica publishes the blobs its
// clients read: the index's flush interval, the rhythm of every exchange.
const DefaultServingInterval = time.Second

// servingGap is the least time between two publications: a blob's first
// reader publishes before the tick, but a burst of hits costs at most one
// publication per gap.
const servingGap = 100 * time.Millisecond

// Serving shares, through Redis, the blobs each replica's clients are
// reading right now, so that the evicting replica leaves them alone. Each
// replica replaces its own set every interval (and soon after a blob gets its
// first reader); the set expires after three intervals, so a dead replica's
// set goes by itself. It fails fast while the coordinator is degraded.
type Serving struct {
	r     *Redis
	id    string        // this replica's set
	every time.Duration // publication interval
}

// NewServing returns the serving sets on r's Redis, published every interval
// (0: DefaultServingInterval).
func NewServing(r *Redis, every time.Duration) *Serving {
	if every <= 0 {
		every = DefaultServingInterval
	}
	return &Serving{r: r, id: newToken(), every: every}
}

// Publish replaces this replica's set by dgsts (none: deletes it).
func (s *Serving) Publish(ctx context.Context, dgsts []digest.Digest) error {
	args := make([]any, 0, 2+len(dgsts))
	args = append(args, s.id, (3 * s.every).Milliseconds())
	for _, d := range dgsts {
		args = append(args, d.String())
	}
	err := s.r.Do(ctx, func(ctx context.Context, c redis.UniversalClient) error {
		return publishServingScript.Run(ctx, c, []string{servingReplicasKey, servingSetPrefix + s.id}, args...).Err()
	})
	if err != nil {
		return fmt.Errorf("publish %d blobs served: %w", len(dgsts), err)
	}
	return nil
}

// Used returns those of dgsts that the cluster uses now: a replica holds the
// lease leaseOf(d) (it fills d) or serves d to a client. It is one round trip
// for the whole batch: one pipeline of the lease checks and the sets' script.
func (s *Serving) Used(ctx context.Context, dgsts []digest.Digest, leaseOf func(digest.Digest) string) (map[digest.Digest]bool, error) {
	used := make(map[digest.Digest]bool)
	if len(dgsts) == 0 {
		return used, nil
	}
	var leases []*redis.IntCmd
	var served *redis.Cmd
	err := s.r.Do(ctx, func(ctx context.Context, c redis.UniversalClient) error {
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			args := []any{servingSetPrefix}
			for _, d := range dgsts {
				leases = append(leases, p.Exists(ctx, leaseKey(leaseOf(d))))
				args = append(args, d.String())
			}
			served = servedScript.Eval(ctx, p, []string{servingReplicasKey}, args...)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("blobs in use in the cluster: %w", err)
	}
	for i, cmd := range leases {
		if cmd.Val() > 0 {
			used[dgsts[i]] = true
		}
	}
	names, _ := served.StringSlice()
	for _, n := range names {
		used[digest.Digest(n)] = true
	}
	return used, nil
}

// Run publishes what serving returns every interval, and soon after changed
// receives (a blob got its first reader), until ctx ends; then it deletes
// this replica's set, so that its blobs are free at once.
func (s *Serving) Run(ctx context.Context, serving func() []digest.Digest, changed <-chan struct{}) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	last := -1 // blobs in the last publication; -1: none yet
	for {
		if d := serving(); len(d) > 0 || last != 0 {
			if err := s.Publish(ctx, d); err == nil {
				last = len(d)
			} else if ctx.Err() == nil {
				s.r.log.WithError(err).Debug("blobs served not published; the evicting replica sees only its own")
			}
		}
		select {
		case <-ctx.Done():
			s.withdraw()
			return
		case <-t.C:
		case <-changed:
			time.Sleep(servingGap) // gather a burst of first readers
		}
	}
}

// withdraw deletes this replica's set as it stops.
func (s *Serving) withdraw() {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := s.Publish(ctx, nil); err != nil {
		s.r.log.WithError(err).Debug("blobs served not withdrawn; they expire")
	}
}
