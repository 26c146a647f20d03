package scheduler

import (
	"context"

	"github.com/opencontainers/go-digest"
)

// InUseBatcher is a Deleter that answers InUse for many digests at once. In
// a cluster that is one round trip to the coordination service for a batch
// of candidates rather than one per candidate. A pass asks it about each
// batch right before deciding on the batch, so the answers are fresh.
type InUseBatcher interface {
	// InUseBatch returns those of dgsts that are in use now, as InUse would
	// report each.
	InUseBatch(ctx context.Context, dgsts []digest.Digest) map[digest.Digest]bool
}

// inUseBatch is how many candidates a pass asks about at once: large enough
// that the round trip is paid rarely, small enough that the answer is still
// fresh when the last of them is deleted.
const inUseBatch = 100

// inUseOf returns those of dgsts that d reports in use: in one call when d
// batches, else one InUse each.
func inUseOf(ctx context.Context, d Deleter, dgsts []digest.Digest) map[digest.Digest]bool {
	if len(dgsts) == 0 {
		return nil
	}
	if b, ok := d.(InUseBatcher); ok {
		return b.InUseBatch(ctx, dgsts)
	}
	out := make(map[digest.Digest]bool)
	for _, x := range dgsts {
		if d.InUse(x) {
			out[x] = true
		}
	}
	return out
}

// candidates are the distinct contents of vs (tags have none) not in skip.
func candidates(vs []victim, skip map[digest.Digest]bool) []digest.Digest {
	seen := make(map[digest.Digest]bool, len(vs))
	var out []digest.Digest
	for _, v := range vs {
		if v.Kind == KindTag || skip[v.Digest] || seen[v.Digest] {
			continue
		}
		seen[v.Digest] = true
		out = append(out, v.Digest)
	}
	return out
}
