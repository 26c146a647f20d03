package scheduler

import (
	"testing"
	"time"
)

// change is a remote change of k accessed at, of size bytes.
func change(k Key, at time.Time, size int64, removed bool) Change {
	return Change{Entry: Entry{Key: k, Size: size, LastAccess: at}, Removed: removed}
}

// TestApply: another replica's record adds an entry, a later access moves it,
// an older one does not, a removal drops it unless this replica accessed it
// later, a moved tag moves; and nothing merged is queued for publishing.
func TestApply(t *testing.T) {
	clk := newClock()
	ix, _ := openTest(t, WithClock(clk.Now), WithTTL(time.Hour))
	ix.startSharing()
	t0 := clk.Now()
	b := blobKey("r", "x")
	if n := ix.apply([]Change{change(b, t0, 10, false)}); n != 1 {
		t.Fatalf("apply of a new entry changed %d", n)
	}
	if e, ok := ix.Get(b); !ok || e.Size != 10 || ix.TotalSize() != 10 {
		t.Fatalf("entry %+v %v, total %d", e, ok, ix.TotalSize())
	}
	if n := ix.apply([]Change{change(b, t0.Add(-time.Second), 10, false)}); n != 0 {
		t.Fatal("an older access moved the entry")
	}
	ix.apply([]Change{change(b, t0.Add(time.Minute), 10, false)})
	if e, _ := ix.Get(b); !e.LastAccess.Equal(t0.Add(time.Minute)) {
		t.Fatalf("a later access did not move the entry: %v", e.LastAccess)
	}
	clk.Add(2 * time.Minute)
	ix.Touch(b) // this replica served it after the remover's last known access
	if n := ix.Pending(); n != 1 {
		t.Fatalf("%d changes pending after the local touch, want 1 (merged ones are never queued)", n)
	}
	ix.apply([]Change{change(b, t0.Add(time.Minute), 10, true)})
	if _, ok := ix.Get(b); !ok {
		t.Fatal("a removal dropped an entry accessed after it")
	}
	ix.apply([]Change{change(b, clk.Now(), 10, true)})
	if _, ok := ix.Get(b); ok || ix.TotalSize() != 0 {
		t.Fatalf("a removal did not drop the entry (total %d)", ix.TotalSize())
	}
	tag := tagKey("r", "v1", "m1")
	ix.apply([]Change{change(tag, t0, 0, false)})
	moved := tagKey("r", "v1", "m2")
	ix.apply([]Change{change(moved, clk.Now(), 0, false)})
	if e, _ := ix.Get(tag); e.Digest != moved.Digest {
		t.Fatalf("tag points at %s, want %s", e.Digest, moved.Digest)
	}
	if got := ix.takeOutbox(); len(got) != 0 {
		t.Fatalf("outbox %+v, want nothing: the touched entry was removed since, the rest was merged", got)
	}
}

// TestApplyPersists: merged entries are written to the index file like
// local ones, so a restart keeps the cluster's view.
func TestApplyPersists(t *testing.T) {
	ix, path := openTest(t)
	k := blobKey("r", "remote")
	ix.apply([]Change{change(k, time.Now(), 5, false)})
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := openAt(t, path).Get(k); !ok {
		t.Fatal("a merged entry was not persisted")
	}
}

// TestOutbox: touches coalesce per entry, removals are queued first, a
// failed publish puts everything back, and an index that does not share
// queues nothing.
func TestOutbox(t *testing.T) {
	ix, _ := openTest(t)
	k, gone := blobKey("r", "hot"), blobKey("r", "gone")
	ix.Record(Entry{Key: k, Size: 1})
	if n := ix.Pending(); n != 0 {
		t.Fatalf("an index that does not share queued %d changes", n)
	}
	ix.startSharing()
	ix.Record(Entry{Key: gone, Size: 1})
	for range 1000 {
		ix.Touch(k)
	}
	if err := ix.Remove(gone); err != nil {
		t.Fatal(err)
	}
	out := ix.takeOutbox()
	if len(out) != 2 || !out[0].Removed || out[0].Key.id() != gone.id() || out[1].Key.id() != k.id() {
		t.Fatalf("outbox %+v, want the removal of gone, then k once", out)
	}
	if ix.Pending() != 0 {
		t.Fatal("outbox not emptied")
	}
	ix.requeueOutbox(out)
	if again := ix.takeOutbox(); len(again) != 2 || !again[0].Removed {
		t.Fatalf("requeued outbox %+v", again)
	}
}

// TestMergeSnapshot: joining merges the cluster's state and queues what this
// replica knows better; with an authoritative state, entries it lacks are
// dropped unless they wait to be published.
func TestMergeSnapshot(t *testing.T) {
	clk := newClock()
	ix, _ := openTest(t, WithClock(clk.Now))
	t0 := clk.Now()
	older, newer, unknown, removed := blobKey("r", "older"), blobKey("r", "newer"), blobKey("r", "unknown"), blobKey("r", "removed")
	for _, k := range []Key{older, newer, removed} {
		ix.Record(Entry{Key: k, Size: 1, LastAccess: t0})
	}
	ix.startSharing()
	pending := blobKey("r", "pending")
	ix.Record(Entry{Key: pending, Size: 1})
	state := []Change{
		change(older, t0.Add(time.Minute), 1, false),
		change(newer, t0.Add(-time.Minute), 1, false),
		change(unknown, t0, 1, false),
	}
	applied, queued, dropped := ix.mergeSnapshot(state, true)
	if applied != 2 || queued != 2 || dropped != 1 {
		t.Fatalf("applied %d queued %d dropped %d; want 2 (older, unknown), 2 (newer, pending), 1 (removed)", applied, queued, dropped)
	}
	if _, ok := ix.Get(removed); ok {
		t.Fatal("an entry the authoritative state lacks was kept")
	}
	if e, _ := ix.Get(older); !e.LastAccess.Equal(t0.Add(time.Minute)) {
		t.Fatal("the state's later access was not merged")
	}
	ix.mu.Lock()
	expired := len(ix.expired(t0.Add(DefaultTTL + 30*time.Second)))
	ix.mu.Unlock()
	if expired != 3 { // newer, unknown, pending; not older, moved a minute on
		t.Fatalf("%d entries expired after the merge, want 3: lanes not in access order", expired)
	}
	_, queued, dropped = ix.mergeSnapshot(nil, false)
	if dropped != 0 || queued != ix.Len() {
		t.Fatalf("union merge of an empty state: queued %d of %d, dropped %d", queued, ix.Len(), dropped)
	}
}
