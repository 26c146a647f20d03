package main

import (
	"testing"
	"time"

	"github.com/ocimirror/proxy/internal/redistest"
	"github.com/ocimirror/proxy/internal/s3test"
	"github.com/ocimirror/proxy/internal/testregistry"
	"github.com/ocimirror/proxy/scheduler"
)

// TestS3ClusterIndexRedisDown: two replicas, A holding the evict lease, TTL
// 3s. With Redis stopped, B serves hits without the upstream, fetches a miss
// alone, records it and evicts alone (degraded: gauge set, changes pending).
// Redis comes back empty: both join a new generation of the shared index and
// converge (A learns what B recorded meanwhile, neither keeps what was
// evicted, nothing pending), and one replica alone evicts again.
func TestS3ClusterIndexRedisDown(t *testing.T) {
	rs := redistest.Start(t)
	srv := s3test.Start(t)
	reg := testregistry.Start(t)
	w := imageOf(t, reg.PushRandom(t, "cl/w:v1", 20_000, 1), "cl/w", "v1")
	u := imageOf(t, reg.PushRandom(t, "cl/u:v1", 20_000, 1), "cl/u", "v1")
	v := imageOf(t, reg.PushRandom(t, "cl/v:v1", 20_000, 1), "cl/v", "v1")
	last := imageOf(t, reg.PushRandom(t, "cl/t:v1", 20_000, 1), "cl/t", "v1")
	a := startNode(t, "a", clusterConfig(t, srv, rs, reg.URL, clusterTTL))
	evictLeaseHeld(t, rs)
	b := startNode(t, "b", clusterConfig(t, srv, rs, reg.URL, clusterTTL))
	b.pull(t, "cl/w:v1")
	b.pull(t, "cl/u:v1")
	waitLimit(t, 10*time.Second, "W and U, pulled through B, in A's index", func() bool { return a.indexed(w) && a.indexed(u) })
	b.pull(t, "cl/w:v1")
	wm := w.keys[1]
	waitLimit(t, 10*time.Second, "B's latest access to W in A's index", func() bool { return sameAccess(a, b, wm) })

	rs.Stop() // A evicts alone now, W within a TTL: the hit comes before
	gets := reg.Count("GET", "blobs")
	b.pull(t, "cl/w:v1")
	if n := reg.Count("GET", "blobs"); n != gets {
		t.Fatalf("a hit went upstream (%d blob GETs) with redis down", n-gets)
	}
	b.pull(t, "cl/v:v1") // a miss, fetched alone
	start := time.Now()
	for b.deleted(t) == 0 { // U expires: B, which never held the lease, evicts alone
		if time.Since(start) > 20*time.Second {
			t.Fatal("B did not evict alone within 20s with redis down")
		}
		b.pull(t, "cl/v:v1")
		time.Sleep(300 * time.Millisecond)
	}
	degraded, pending := b.metric(t, "proxy_cluster_degraded"), b.metric(t, "proxy_index_sync_pending")
	t.Logf("redis down: B evicted %d contents alone after %v; degraded %v, %v changes pending", b.deleted(t), time.Since(start), degraded, pending)
	if degraded != 1 || pending == 0 {
		t.Fatalf("with redis down B reports degraded %v and %v pending changes; want 1 and some", degraded, pending)
	}

	rs.Restart()
	restarted := time.Now()
	for !converged(t, a, b, v, u) {
		if time.Since(restarted) > 30*time.Second {
			t.Fatalf("not converged 30s after redis restarted: A %d entries, B %d; V in A %v", a.ix.Len(), b.ix.Len(), a.indexed(v))
		}
		b.pull(t, "cl/v:v1")
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("converged %v after redis restarted: %d entries each", time.Since(restarted), a.ix.Len())
	oneEvictorAgain(t, rs, a, b, last)
}

// sameAccess reports whether a and b know the same last access of k.
func sameAccess(a, b *node, k scheduler.Key) bool {
	ea, oka := a.ix.Get(k)
	eb, okb := b.ix.Get(k)
	return oka && okb && ea.LastAccess.Equal(eb.LastAccess)
}

// converged reports whether A and B have the same entries, V's among them and
// none of U's, nothing waits to be published and neither is degraded.
func converged(t *testing.T, a, b *node, v, u image) bool {
	for _, n := range []*node{a, b} {
		if !n.indexed(v) || n.metric(t, "proxy_index_sync_pending") != 0 || n.metric(t, "proxy_cluster_degraded") != 0 {
			return false
		}
		for _, k := range u.keys {
			if _, ok := n.ix.Get(k); ok {
				return false
			}
		}
	}
	return a.ix.Len() == b.ix.Len() && a.ix.TotalSize() == b.ix.TotalSize()
}

// oneEvictorAgain: once the evict lease settled after Redis came back (the
// former holder notices it lost the lease within a third of its TTL), what
// expires is deleted by one replica only.
func oneEvictorAgain(t *testing.T, rs *redistest.Server, a, b *node, im image) {
	t.Helper()
	evictLeaseHeld(t, rs)
	time.Sleep(4 * time.Second)
	da, db := a.deleted(t), b.deleted(t)
	b.pull(t, "cl/t:v1")
	waitLimit(t, 30*time.Second, "T, pulled once after the restart, to be evicted", func() bool { return allGone(a, im) })
	time.Sleep(time.Second) // the pass's counts follow its end
	ea, eb := a.deleted(t)-da, b.deleted(t)-db
	t.Logf("after the restart: contents deleted by A %d, by B %d", ea, eb)
	if (ea > 0) == (eb > 0) {
		t.Fatalf("after the restart A deleted %d and B %d contents; want one replica alone", ea, eb)
	}
}
