package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ocimirror/proxy/internal/redistest"
	"github.com/ocimirror/proxy/scheduler"
)

// syncInterval is the exchange interval of the test replicas.
const syncInterval = 50 * time.Millisecond

// indexReplica is one replica's index shared through Redis.
type indexReplica struct {
	ix    *scheduler.Index
	sync  *scheduler.Syncer
	coord *Redis
	stop  func()
}

// newIndexReplica opens an index shared through rs whose log keeps about
// logLength changes. With run, its Syncer runs every syncInterval; otherwise
// the test calls Sync.
func newIndexReplica(t *testing.T, rs *redistest.Server, logLength int64, run bool) *indexReplica {
	t.Helper()
	coord := newCoord(t, rs, WithLogger(quietLogger()))
	ix := openIndex(t, scheduler.WithTTL(time.Hour))
	r := &indexReplica{ix: ix, coord: coord, stop: func() {}}
	r.sync = scheduler.NewSyncer(ix, NewSharedIndex(coord, logLength), scheduler.WithSyncInterval(syncInterval))
	if run {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); r.sync.Run(ctx) }()
		r.stop = func() { cancel(); <-done }
		t.Cleanup(r.stop)
	}
	return r
}

// waitUntil polls cond every 10ms for up to 5s and returns how long it took.
func waitUntil(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("gave up after 5s waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// accessOf returns the last access of k in ix, zero if it has no entry.
func accessOf(ix *scheduler.Index, k scheduler.Key) time.Time {
	e, ok := ix.Get(k)
	if !ok {
		return time.Time{}
	}
	return e.LastAccess
}

// TestSharedIndexPropagates: a record, a touch and a removal made on replica
// A reach replica B's index within a few exchange intervals, and nothing B
// merged is published back.
func TestSharedIndexPropagates(t *testing.T) {
	rs := redistest.Start(t)
	a := newIndexReplica(t, rs, 0, true)
	b := newIndexReplica(t, rs, 0, true)
	k := blobKey("lib/app", "layer")
	a.ix.Record(scheduler.Entry{Key: k, Size: 1234})
	took := waitUntil(t, "A's record in B's index", func() bool { _, ok := b.ix.Get(k); return ok })
	if e, _ := b.ix.Get(k); e.Size != 1234 || !e.LastAccess.Equal(accessOf(a.ix, k)) {
		t.Fatalf("B has %+v, A has access %v", e, accessOf(a.ix, k))
	}
	t.Logf("record propagated in %v (exchange every %v)", took, syncInterval)

	time.Sleep(5 * time.Millisecond)
	a.ix.Touch(k)
	touched := accessOf(a.ix, k)
	took = waitUntil(t, "A's touch in B's index", func() bool { return accessOf(b.ix, k).Equal(touched) })
	t.Logf("touch propagated in %v", took)

	if err := a.ix.Remove(k); err != nil {
		t.Fatal(err)
	}
	took = waitUntil(t, "A's removal in B's index", func() bool { _, ok := b.ix.Get(k); return !ok })
	t.Logf("removal propagated in %v", took)
	if st := b.sync.Stats(); st.Published != 0 {
		t.Fatalf("B published %d changes; it made none, it only merged A's", st.Published)
	}
}

// TestSharedIndexCoalescesTouches: thousands of touches of one entry within
// an exchange interval are published as one change.
func TestSharedIndexCoalescesTouches(t *testing.T) {
	rs := redistest.Start(t)
	a := newIndexReplica(t, rs, 0, false)
	ctx := context.Background()
	k := blobKey("lib/app", "hot")
	a.ix.Record(scheduler.Entry{Key: k, Size: 1})
	if err := a.sync.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	before := a.sync.Stats().Published
	for range 5000 {
		a.ix.Touch(k)
	}
	if err := a.sync.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n := a.sync.Stats().Published - before; n != 1 {
		t.Fatalf("5000 touches of one entry published as %d changes, want 1", n)
	}
}

// TestSharedIndexRemovalKeepsLaterAccess: a removal does not drop an entry a
// replica accessed after the remover's last known access.
func TestSharedIndexRemovalKeepsLaterAccess(t *testing.T) {
	rs := redistest.Start(t)
	a := newIndexReplica(t, rs, 0, false)
	b := newIndexReplica(t, rs, 0, false)
	ctx := context.Background()
	k := blobKey("lib/app", "served")
	a.ix.Record(scheduler.Entry{Key: k, Size: 1, LastAccess: time.Now().Add(-time.Minute)})
	syncAll(t, ctx, a, b, a, b)
	b.ix.Touch(k) // B serves it, not yet published
	if err := a.ix.Remove(k); err != nil {
		t.Fatal(err)
	}
	syncAll(t, ctx, a, b, a)
	if _, ok := b.ix.Get(k); !ok {
		t.Fatal("B dropped an entry it accessed after A's removal")
	}
	if _, ok := a.ix.Get(k); !ok {
		t.Fatal("B's later access did not bring the entry back to A")
	}
}

func syncAll(t *testing.T, ctx context.Context, rs ...*indexReplica) {
	t.Helper()
	for _, r := range rs {
		if err := r.sync.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSharedIndexTrimmedResync: a replica that did not read while the log
// was trimmed past its position joins again from the state: it gets what it
// missed and drops what was removed meanwhile.
func TestSharedIndexTrimmedResync(t *testing.T) {
	rs := redistest.Start(t)
	a := newIndexReplica(t, rs, 10, false)
	b := newIndexReplica(t, rs, 10, false)
	ctx := context.Background()
	gone := blobKey("lib/app", "evicted")
	a.ix.Record(scheduler.Entry{Key: gone, Size: 1})
	syncAll(t, ctx, a, b)
	if _, ok := b.ix.Get(gone); !ok {
		t.Fatal("B did not get A's entry")
	}
	if err := a.ix.Remove(gone); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		a.ix.Record(scheduler.Entry{Key: blobKey("lib/app", fmt.Sprint(i)), Size: 1})
	}
	// A's own 1001 changes trimmed the log of about 10 past A's position
	// too: it cannot tell whether it missed others' changes, so it joins again.
	if err := a.sync.Sync(ctx); err != nil && !errors.Is(err, scheduler.ErrResync) {
		t.Fatal(err)
	}
	syncAll(t, ctx, a)
	if err := b.sync.Sync(ctx); !errors.Is(err, scheduler.ErrResync) {
		t.Fatalf("B's read after the trim: %v, want ErrResync", err)
	}
	syncAll(t, ctx, b)
	if _, ok := b.ix.Get(gone); ok {
		t.Fatal("B kept an entry removed while it was cut off")
	}
	if n := b.ix.Len(); n != 1000 {
		t.Fatalf("B has %d entries after joining again, want A's 1000", n)
	}
	if j := b.sync.Stats().Joins; j != 2 {
		t.Fatalf("B joined %d times, want 2", j)
	}
}

// TestSharedIndexRedisRestart: with Redis down, a replica records alone
// (its changes wait, exchanges fail fast); when Redis comes back empty, both
// replicas join a new generation and each gets what the other did meanwhile,
// and a replica joining later finds the whole state rebuilt.
func TestSharedIndexRedisRestart(t *testing.T) {
	rs := redistest.Start(t)
	a := newIndexReplica(t, rs, 0, false)
	b := newIndexReplica(t, rs, 0, false)
	ctx := context.Background()
	before := blobKey("lib/app", "before")
	a.ix.Record(scheduler.Entry{Key: before, Size: 1})
	syncAll(t, ctx, a, b)

	rs.Stop()
	during := blobKey("lib/app", "during")
	a.ix.Record(scheduler.Entry{Key: during, Size: 2})
	start := time.Now()
	for range 3 {
		if err := a.sync.Sync(ctx); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("exchange with redis down: %v, want ErrUnavailable", err)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("3 exchanges with redis down took %v; they must fail fast", took)
	}
	if n := a.ix.Pending(); n != 1 {
		t.Fatalf("%d changes pending with redis down, want 1", n)
	}

	rs.Restart()
	waitUntil(t, "A's exchange to succeed after the restart", func() bool { return a.sync.Sync(ctx) == nil })
	waitUntil(t, "B's exchange to succeed after the restart", func() bool { return b.sync.Sync(ctx) == nil })
	syncAll(t, ctx, a, b)
	if _, ok := b.ix.Get(during); !ok {
		t.Fatal("B lacks what A recorded while redis was down")
	}
	c := newIndexReplica(t, rs, 0, false)
	syncAll(t, ctx, c)
	for _, k := range []scheduler.Key{before, during} {
		if _, ok := c.ix.Get(k); !ok {
			t.Fatalf("a replica joining after the restart lacks %s: the state was not rebuilt", k)
		}
	}
	if a.sync.Stats().Joins != 2 || b.sync.Stats().Joins != 2 {
		t.Fatalf("joins: A %d, B %d; want 2 each (the new generation)", a.sync.Stats().Joins, b.sync.Stats().Joins)
	}
}

// TestSharedIndexKeys: the index's keys carry the package prefix and one
// hash tag, so that they share a Redis Cluster slot as the scripts need.
func TestSharedIndexKeys(t *testing.T) {
	for _, k := range []string{indexGenKey, indexStateKey, indexLogKey} {
		if !strings.HasPrefix(k, Prefix+"{index}:") {
			t.Fatalf("key %q: want the prefix %q and the hash tag {index}", k, Prefix)
		}
	}
}
