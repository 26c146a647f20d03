package cache

import (
	"context"
	"errors"
	"time"

	"github.com/ocimirror/proxy/cluster"
)

// Defaults of the cluster coordination of fills.
const (
	// DefaultLeaseTTL is how long a fill lease lives without renewal: how long
	// the cluster waits for a replica that died mid-fill before another takes
	// over. The holder renews it every third of it while the fill runs.
	DefaultLeaseTTL = 5 * time.Second
	// DefaultClusterWait bounds how long a replica waits for another's fill
	// before it fetches the blob itself.
	DefaultClusterWait = 15 * time.Minute
)

// WithCluster coordinates fills with the other replicas sharing the store:
// one replica fetches a digest upstream while the others wait for its commit
// and then read the blob from the store. leaseTTL and wait (0: the defaults)
// are the lease's life without renewal and the longest wait for another
// replica's fill.
func WithCluster(c cluster.Coordinator, leaseTTL, wait time.Duration) Option {
	return func(ca *Cache) {
		ca.coord = c
		if leaseTTL > 0 {
			ca.leaseTTL = leaseTTL
		}
		if wait > 0 {
			ca.clusterWait = wait
		}
	}
}

// claimFill decides where the fill f gets its bytes: from the upstream (this
// replica holds the cluster's lease on the digest, or nobody can tell because
// Redis is unreachable), or from the store (another replica committed the blob
// while this one waited). release ends the lease; the fill calls it after its
// commit, so waiters find the blob when they wake.
//
// The clients of f block meanwhile: they get the blob's first bytes when it is
// committed elsewhere and copied from the store (streaming from the filling
// replica is a later step).
func (c *Cache) claimFill(f *fill) (release func(), fromStore bool) {
	noop := func() {}
	if !c.coord.Clustered() {
		return noop, false
	}
	key := "fill:" + f.dgst.String()
	log := c.log.WithField("digest", f.dgst)
	ctx, cancel := context.WithTimeout(c.ctx, c.clusterWait)
	defer cancel()
	for {
		held, release, err := c.coord.Lease(ctx, key, c.leaseTTL)
		if err != nil {
			log.WithError(err).Debug("no fill lease; fetching alone")
			return noop, false
		}
		if held {
			// The previous holder may have committed just before releasing.
			if _, err := c.store.StatBlob(ctx, f.dgst); err == nil {
				release()
				return noop, true
			}
			return release, false
		}
		// Another replica fills: wait for its release (after its commit, or
		// its failure) or for its lease to expire (it died), then look again.
		werr := c.coord.WaitReleased(ctx, key)
		if _, err := c.store.StatBlob(c.ctx, f.dgst); err == nil {
			return noop, true
		}
		if werr != nil {
			if c.ctx.Err() == nil {
				msg := "waiting for another replica's fill failed; fetching alone"
				if errors.Is(werr, context.DeadlineExceeded) {
					msg = "another replica's fill took longer than the cluster wait; fetching alone"
				}
				log.WithError(werr).Warn(msg)
			}
			return noop, false
		}
	}
}

// copyStored fills f from the blob another replica committed, verifying it
// again on the way (what is read from the store is hashed like an upstream
// body).
func (c *Cache) copyStored(f *fill) error {
	rc, info, err := c.store.OpenBlob(c.ctx, f.dgst)
	if err != nil {
		return err
	}
	defer rc.Close()
	f.start(info.Size)
	return f.copyFrom(rc, info.Size)
}
