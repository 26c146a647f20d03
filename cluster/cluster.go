// Package cluster coordinates replicas of the proxy that share one storage
// bucket: leases (one replica fills a digest, one revalidates a tag) and short
// lived shared values (the digest a tag revalidation found), through Redis.
//
// Coordination is an optimisation, never a dependency for serving: when Redis
// is unreachable every operation fails fast with ErrUnavailable and callers act
// alone, as a single node would (degraded mode). Local is the single-node
// implementation: every lease is granted, nothing is shared.
package cluster

import (
	"context"
	"errors"
	"time"
)

// ErrUnavailable reports that the coordination service cannot be reached (or
// was not reachable moments ago): the caller should go on alone.
var ErrUnavailable = errors.New("cluster coordination unavailable")

// Coordinator is what the caches need from the cluster.
type Coordinator interface {
	// Lease tries once to take key for ttl. When held, the lease is renewed in
	// the background until release is called (release is idempotent and
	// never blocks for long); when another replica holds it, held is false.
	// An error (wrapping ErrUnavailable) means nobody can tell: go on alone.
	Lease(ctx context.Context, key string, ttl time.Duration) (held bool, release func(), err error)
	// WaitReleased blocks until key is not held (released, or expired because
	// its holder died), or ctx ends. It returns nil when the key is free.
	WaitReleased(ctx context.Context, key string) error
	// Put stores value under key for ttl, for other replicas to Get.
	Put(ctx context.Context, key, value string, ttl time.Duration) error
	// Get returns the value Put under key; ok is false when there is none.
	Get(ctx context.Context, key string) (value string, ok bool, err error)
	// Clustered reports whether other replicas may exist (false for Local).
	Clustered() bool
}

// Holder is implemented by coordinators that can tell the holder of a long
// lived lease that it lost it (both Local and Redis do).
type Holder interface {
	// Hold is Coordinator.Lease, and also returns a channel that is closed if
	// a held lease is lost (expired and taken by another replica).
	Hold(ctx context.Context, key string, ttl time.Duration) (held bool, lost <-chan struct{}, release func(), err error)
}

// Local is the single-node Coordinator: every lease is granted at once (the
// process itself coalesces fills and revalidations), nothing is shared.
type Local struct{}

// Lease grants every lease.
func (Local) Lease(context.Context, string, time.Duration) (bool, func(), error) {
	return true, func() {}, nil
}

// Hold grants every lease, and never loses one.
func (Local) Hold(context.Context, string, time.Duration) (bool, <-chan struct{}, func(), error) {
	return true, nil, func() {}, nil
}

// WaitReleased returns at once: no other replica holds anything.
func (Local) WaitReleased(context.Context, string) error { return nil }

// Put stores nothing.
func (Local) Put(context.Context, string, string, time.Duration) error { return nil }

// Get finds nothing.
func (Local) Get(context.Context, string) (string, bool, error) { return "", false, nil }

// Clustered is false.
func (Local) Clustered() bool { return false }
