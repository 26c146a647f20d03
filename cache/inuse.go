package cache

import (
	"context"

	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/scheduler"
)

// ClusterUse tells which of a batch of blobs the replicas of a cluster use
// now: one holds the fill lease leaseOf(d), or serves d to a client.
type ClusterUse interface {
	Used(ctx context.Context, dgsts []digest.Digest, leaseOf func(digest.Digest) string) (map[digest.Digest]bool, error)
}

var _ scheduler.InUseBatcher = Deleter{}

// InUse reports whether dgst is filled or read here, or, in a cluster, by
// another replica.
func (d Deleter) InUse(dgst digest.Digest) bool {
	return d.InUseBatch(context.Background(), []digest.Digest{dgst})[dgst]
}

// InUseBatch returns those of dgsts that are in use: this replica's fills
// and readers first, then, for the rest, the cluster in one round trip. When
// the cluster cannot tell, only this replica's count.
func (d Deleter) InUseBatch(ctx context.Context, dgsts []digest.Digest) map[digest.Digest]bool {
	used := make(map[digest.Digest]bool)
	var rest []digest.Digest
	for _, x := range dgsts {
		if d.usedHere(x) {
			used[x] = true
		} else {
			rest = append(rest, x)
		}
	}
	if d.Cluster == nil || len(rest) == 0 {
		return used
	}
	remote, err := d.Cluster.Used(ctx, rest, fillLease)
	if err != nil {
		return used // degraded: the evictor is alone, as a single node
	}
	for x := range remote {
		used[x] = true
	}
	return used
}

// usedHere reports whether a fill of one of the caches writes dgst or a
// client of theirs reads it.
func (d Deleter) usedHere(dgst digest.Digest) bool {
	for _, c := range d.Caches {
		if c.Filling(dgst) || c.readers.InUse(dgst) {
			return true
		}
	}
	return false
}
