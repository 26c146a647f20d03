package cluster

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/internal/redistest"
	"github.com/ocimirror/proxy/scheduler"
)

// clusterEvictor is one replica's evictor in TestRunOnceInCluster: its own
// index and deleter, the shared Redis.
type clusterEvictor struct {
	ix     *scheduler.Index
	d      *fakeDeleter
	cancel context.CancelFunc
	done   chan struct{}
}

func startClusterEvictor(t *testing.T, rs *redistest.Server, ttl time.Duration, content ...string) *clusterEvictor {
	t.Helper()
	coord := newCoord(t, rs, WithLogger(quietLogger()))
	ix := openIndex(t, scheduler.WithTTL(100*time.Millisecond))
	for _, c := range content {
		ix.Record(scheduler.Entry{Key: blobKey("r", c), Size: 1})
	}
	ce := &clusterEvictor{ix: ix, d: &fakeDeleter{}, done: make(chan struct{})}
	ev := scheduler.NewEvictor(ix, ce.d, scheduler.WithClusterLease(coord, ttl))
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

func quietLogger() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// openIndex opens an index in a temporary directory, closed when the test ends.
func openIndex(t *testing.T, opts ...scheduler.Option) *scheduler.Index {
	t.Helper()
	ix, err := scheduler.Open(filepath.Join(t.TempDir(), "scheduler.db"), append([]scheduler.Option{scheduler.WithLogger(quietLogger())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ix.Close() })
	return ix
}

func dgst(s string) digest.Digest { return digest.FromString(s) }

func blobKey(repo, content string) scheduler.Key {
	return scheduler.Key{Kind: scheduler.KindBlob, Repo: repo, Digest: dgst(content)}
}

func callBlob(content string) string { return fmt.Sprintf("blob %s", dgst(content)) }

// fakeDeleter records the deletions asked of it; inUse content stays.
type fakeDeleter struct {
	mu    sync.Mutex
	calls []string
	inUse map[digest.Digest]bool
}

func (f *fakeDeleter) call(c string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	return nil
}

func (f *fakeDeleter) DeleteTag(_ context.Context, repo, tag string) error {
	return f.call(fmt.Sprintf("tag %s:%s", repo, tag))
}

func (f *fakeDeleter) DeleteManifest(_ context.Context, repo string, d digest.Digest) error {
	return f.call(fmt.Sprintf("manifest %s@%s", repo, d))
}

func (f *fakeDeleter) UnlinkBlob(_ context.Context, repo string, d digest.Digest) error {
	return f.call(fmt.Sprintf("unlink %s@%s", repo, d))
}

func (f *fakeDeleter) DeleteBlob(_ context.Context, d digest.Digest) error {
	return f.call(fmt.Sprintf("blob %s", d))
}

func (f *fakeDeleter) InUse(d digest.Digest) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inUse[d]
}
