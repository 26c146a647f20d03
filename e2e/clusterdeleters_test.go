//go:build e2e

package e2e

// Who deleted in the eviction phase: each replica's proxy_evicted_total and
// proxy_evicted_bytes_total, which count its own passes' deletions.

import (
	"fmt"
	"testing"
	"time"
)

// evictedTotals returns every replica's proxy_evicted_total (all kinds).
func evictedTotals(t *testing.T, reps []*replica) []float64 {
	t.Helper()
	out := make([]float64, len(reps))
	for i, r := range reps {
		v, err := r.counter("proxy_evicted_total")
		if err != nil {
			t.Fatal(err)
		}
		out[i] = v
	}
	return out
}

// checkDeleters checks that replica 0, the evict lease's holder, deleted and
// no other replica did since before, nor took the lease. The counters follow
// the end of a pass, so it waits (bounded) for replica 0's to grow.
func checkDeleters(t *testing.T, reps []*replica, before []float64) {
	t.Helper()
	var grew []float64
	err := waitUntil(5*time.Second, func() error {
		grew = evictedTotals(t, reps)
		for i := range grew {
			grew[i] -= before[i]
		}
		if grew[0] == 0 {
			return fmt.Errorf("replica 0's proxy_evicted_total did not grow")
		}
		return nil
	})
	bytes := make([]float64, len(reps))
	for i, r := range reps {
		bytes[i], _ = r.counter("proxy_evicted_bytes_total")
	}
	t.Logf("evict: deletions (proxy_evicted_total) by replica %v, bytes %v", grew, bytes)
	if err != nil {
		t.Error(err)
	}
	for i, r := range reps[1:] {
		if grew[i+1] != 0 {
			t.Errorf("replica %d deleted %v items: only the lease's holder, replica 0, may", r.ID, grew[i+1])
		}
		if logHas(r, leaseLine) == nil {
			t.Errorf("replica %d took the evict lease during the phase", r.ID)
		}
	}
}
