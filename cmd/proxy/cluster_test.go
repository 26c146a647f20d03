package main

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ocimirror/proxy/cluster"
	"github.com/ocimirror/proxy/internal/redistest"
	"github.com/ocimirror/proxy/internal/s3test"
	"github.com/ocimirror/proxy/internal/testregistry"
	"github.com/ocimirror/proxy/scheduler"
)

// clusterTTL is the TTL of the cluster eviction tests: short, yet three times
// the default exchange interval of the shared index (1s, the flush interval),
// so that content pulled every 300ms through one replica never looks expired
// to the evicting one, even on a loaded machine.
const clusterTTL = 3 * time.Second

// evictLeaseHeld waits until some replica holds the evict lease.
func evictLeaseHeld(t *testing.T, rs *redistest.Server) {
	t.Helper()
	raw := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer raw.Close()
	waitLimit(t, 10*time.Second, "a replica to take the evict lease", func() bool {
		n, err := raw.Exists(context.Background(), cluster.Prefix+"lease:"+scheduler.EvictLease).Result()
		return err == nil && n == 1
	})
}

// TestS3ClusterEviction: three replicas on one bucket and one Redis, TTL 3s.
// Replica A holds the evict lease; X is pulled again and again only through
// B, Y once through C, Z once through C while another replica holds the fill
// lease of one of its layers. After the TTL: Y is deleted, by A alone; X,
// which A never served, stays (no upstream refetch); Z's leased layer stays
// until the lease is released, then goes too.
func TestS3ClusterEviction(t *testing.T) {
	rs := redistest.Start(t)
	srv := s3test.Start(t)
	reg := testregistry.Start(t)
	x := imageOf(t, reg.PushRandom(t, "cl/x:v1", 20_000, 2), "cl/x", "v1")
	y := imageOf(t, reg.PushRandom(t, "cl/y:v1", 20_000, 2), "cl/y", "v1")
	z := imageOf(t, reg.PushRandom(t, "cl/z:v1", 20_000, 1), "cl/z", "v1")
	cfg := func() string { return clusterConfig(t, srv, rs, reg.URL, clusterTTL) }
	a := startNode(t, "a", cfg())
	evictLeaseHeld(t, rs) // A's: it is alone
	b, c := startNode(t, "b", cfg()), startNode(t, "c", cfg())

	b.pull(t, "cl/x:v1")
	xGets := reg.Count("GET", "blobs")
	took := waitLimit(t, 10*time.Second, "X, pulled through B, in A's index", func() bool { return a.indexed(x) })
	t.Logf("B's entries reached A's index in %v", took)
	c.pull(t, "cl/y:v1")
	c.pull(t, "cl/z:v1")
	leased := z.contents[2]
	filler := holdFillLease(t, rs, leased.String())
	start := time.Now()
	for i := 0; !allGone(a, y); i++ {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("Y not evicted 20s after its pull (TTL %v); %d pulls of X", clusterTTL, i)
		}
		b.pull(t, "cl/x:v1")
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("Y evicted %v after its pull (TTL %v)", time.Since(start), clusterTTL)
	// Passes enough for a wrong eviction of X or of the leased layer.
	for range 8 {
		b.pull(t, "cl/x:v1")
		time.Sleep(300 * time.Millisecond)
	}
	for _, d := range x.contents {
		if !a.stored(d) {
			t.Errorf("X's %s was evicted while B served X", d)
		}
	}
	// Y's and Z's configs and layers were fetched once each; X's never again.
	if n, want := reg.Count("GET", "blobs"), xGets+int64(len(y.contents)-1+len(z.contents)-1); n != want {
		t.Errorf("%d upstream blob GETs, want %d: X was fetched again", n, want)
	}
	if !a.stored(leased) {
		t.Fatal("a layer whose fill lease another replica holds was evicted")
	}
	want := len(y.contents) + len(z.contents) - 1
	t.Logf("contents deleted: A %d, B %d, C %d (want %d, 0, 0)", a.deleted(t), b.deleted(t), c.deleted(t), want)
	if a.deleted(t) != want || b.deleted(t) != 0 || c.deleted(t) != 0 {
		t.Fatalf("deletions A %d, B %d, C %d; want %d by A alone", a.deleted(t), b.deleted(t), c.deleted(t), want)
	}

	filler()
	released := time.Now()
	for !(a.deleted(t) == want+1 && !a.stored(leased)) { // the counter follows the pass's end
		if time.Since(released) > 70*time.Second {
			t.Fatalf("the leased layer not evicted 70s after its lease was released (A deleted %d)", a.deleted(t))
		}
		b.pull(t, "cl/x:v1")
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("the leased layer was evicted %v after its lease was released", time.Since(released))
	if n := b.deleted(t) + c.deleted(t); n != 0 || !allStored(a, x) {
		t.Fatalf("after the release: B and C deleted %d, X stored %v; want 0 and true", n, allStored(a, x))
	}
}

// allStored reports whether all of im's contents are in the bucket.
func allStored(n *node, im image) bool {
	for _, d := range im.contents {
		if !n.stored(d) {
			return false
		}
	}
	return true
}

// holdFillLease takes the fill lease of dgst as a replica filling it would
// (renewed until released) and returns its release.
func holdFillLease(t *testing.T, rs *redistest.Server, dgst string) func() {
	t.Helper()
	coord := cluster.NewRedis(redis.NewClient(&redis.Options{Addr: rs.Addr, MaxRetries: -1}))
	t.Cleanup(func() { coord.Close() })
	var release func()
	// The replica that filled it may not have released it yet.
	waitLimit(t, 10*time.Second, "the fill lease", func() bool {
		held, r, err := coord.Lease(context.Background(), "fill:"+dgst, 2*time.Second)
		release = r
		return err == nil && held
	})
	t.Cleanup(release)
	return release
}

// allGone reports whether none of im's contents is in the bucket.
func allGone(n *node, im image) bool {
	for _, d := range im.contents {
		if n.stored(d) {
			return false
		}
	}
	return true
}
