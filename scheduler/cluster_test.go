package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ocimirror/proxy/cluster"
	"github.com/ocimirror/proxy/internal/redistest"
)

// clusterEvictor is one replica's evictor in TestRunOnceInCluster: its own
// index and deleter, the shared Redis.
type clusterEvictor struct {
	ix     *Index
	d      *fakeDeleter
	cancel context.CancelFunc
	done   chan struct{}
}

func startClusterEvictor(t *testing.T, rs *redistest.Server, ttl time.Duration, content ...string) *clusterEvictor {
	t.Helper()
	coord := cluster.NewRedis(redis.NewClient(&redis.Options{Addr: rs.Addr, DialTimeout: 300 * time.Millisecond,
		ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond, MaxRetries: -1}),
		cluster.WithLogger(quietLogger()))
	t.Cleanup(func() { coord.Close() })
	ix, _ := openTest(t, WithTTL(100*time.Millisecond))
	for _, c := range content {
		ix.Record(Entry{Key: blobKey("r", c), Size: 1})
	}
	ce := &clusterEvictor{ix: ix, d: newFakeDeleter(), done: make(chan struct{})}
	ev := NewEvictor(ix, ce.d, WithClusterLease(coord, ttl))
	ctx, cancel := context.WithCancel(context.Background())
	ce.cancel = cancel
	go func() { defer close(ce.done); ev.Run(ctx) }()
	t.Cleanup(ce.stop)
	return ce
}

// stop ends Run (which releases the evict lease) and waits for it, 5s at most.
func (ce *clusterEvictor) stop() {
	ce.cancel()
	select {
	case <-ce.done:
	case <-time.After(5 * time.Second):
	}
}

// deleted reports whether the deleter was asked to delete the blob content.
func (ce *clusterEvictor) deleted(content string) bool {
	ce.d.mu.Lock()
	defer ce.d.mu.Unlock()
	for _, c := range ce.d.calls {
		if c == callBlob(content) {
			return true
		}
	}
	return false
}

func (ce *clusterEvictor) calls() int {
	ce.d.mu.Lock()
	defer ce.d.mu.Unlock()
	return len(ce.d.calls)
}

// TestRunOnceInCluster: two evictors sharing one Redis, each with its own
// index holding the same expired content: only the one holding the evict
// lease deletes, pass after pass; when it stops, the other takes the lease
// over and evicts; with Redis stopped, an evictor evicts alone.
func TestRunOnceInCluster(t *testing.T) {
	rs := redistest.Start(t)
	ttl := 500 * time.Millisecond
	a := startClusterEvictor(t, rs, ttl, "x", "y", "z")
	b := startClusterEvictor(t, rs, ttl, "x", "y", "z")

	deadline := time.Now().Add(5 * time.Second)
	var leader, other *clusterEvictor
	for leader == nil {
		switch {
		case a.deleted("x") && a.deleted("y") && a.deleted("z"):
			leader, other = a, b
		case b.deleted("x") && b.deleted("y") && b.deleted("z"):
			leader, other = b, a
		case time.Now().After(deadline):
			t.Fatal("no evictor deleted the expired content within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(3 * ttl) // several pass windows with expired entries in the other's index
	if n := other.calls(); n != 0 {
		t.Fatalf("the evictor without the lease made %d deletions; want none", n)
	}
	if other.ix.Len() != 3 {
		t.Fatalf("the other's index has %d entries, want its 3 (it ran a pass)", other.ix.Len())
	}

	leader.stop() // releases the lease
	start := time.Now()
	deadline = time.Now().Add(5 * time.Second)
	for !other.deleted("x") {
		if time.Now().After(deadline) {
			t.Fatal("the other evictor did not take over within 5s of the leader's stop")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("takeover after %v (lease ttl %v)", time.Since(start), ttl)

	rs.Stop()
	alone := startClusterEvictor(t, rs, ttl, "w")
	deadline = time.Now().Add(5 * time.Second)
	for !alone.deleted("w") {
		if time.Now().After(deadline) {
			t.Fatal("with redis down an evictor did not evict alone within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
