package scheduler

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestRoundTrip(t *testing.T) {
	clk := newClock()
	ix, path := openTest(t, WithClock(clk.Now), WithTTL(time.Hour))
	t0 := clk.Now()
	ix.Record(Entry{Key: blobKey("library/alpine", "layer"), Size: 1000})
	ix.Record(Entry{Key: manifestKey("library/alpine", "manifest"), Size: 500})
	ix.Record(Entry{Key: tagKey("library/alpine", "3.20", "manifest")})
	if err := ix.Flush(); err != nil {
		t.Fatal(err)
	}
	t1 := clk.Add(10 * time.Minute)
	ix.Touch(blobKey("library/alpine", "layer"))
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}

	ix = openAt(t, path, WithClock(clk.Now), WithTTL(time.Hour))
	if ix.Rebuilt() {
		t.Error("a clean index was rebuilt")
	}
	if n, size := ix.Len(), ix.TotalSize(); n != 3 || size != 1500 {
		t.Errorf("after reopen: %d entries, %d bytes; want 3, 1500", n, size)
	}
	for _, want := range []Entry{
		{Key: blobKey("library/alpine", "layer"), Size: 1000, LastAccess: t1, Expires: t1.Add(time.Hour)},
		{Key: manifestKey("library/alpine", "manifest"), Size: 500, LastAccess: t0, Expires: t0.Add(time.Hour)},
		{Key: tagKey("library/alpine", "3.20", "manifest"), LastAccess: t0, Expires: t0.Add(time.Hour)},
	} {
		got, ok := ix.Get(want.Key)
		if !ok {
			t.Errorf("%s: missing after reopen", want.Key)
			continue
		}
		if got.Key != want.Key || got.Size != want.Size || !got.LastAccess.Equal(want.LastAccess) || !got.Expires.Equal(want.Expires) {
			t.Errorf("%s: got %+v, want %+v", want.Key, got, want)
		}
	}
	if next, ok := ix.NextExpiry(); !ok || !next.Equal(t0.Add(time.Hour)) {
		t.Errorf("NextExpiry = %v %v, want %v", next, ok, t0.Add(time.Hour))
	}
}

// A copy of the file taken while the index is open and busy is what kill -9
// leaves behind: everything flushed must be in it, and it must open cleanly.
func TestFlushedSurvivesSnapshot(t *testing.T) {
	clk := newClock()
	ix, path := openTest(t, WithClock(clk.Now))
	for i := range 100 {
		ix.Record(Entry{Key: blobKey("r", fmt.Sprintf("layer-%d", i)), Size: 10})
	}
	if err := ix.Flush(); err != nil {
		t.Fatal(err)
	}
	ix.Record(Entry{Key: blobKey("r", "unflushed"), Size: 10})
	ix.Touch(blobKey("r", "layer-0"))

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(t.TempDir(), "snapshot.db")
	if err := os.WriteFile(snap, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	got := openAt(t, snap)
	if got.Rebuilt() {
		t.Fatal("snapshot of an open index was found corrupt")
	}
	if got.Len() != 100 {
		t.Errorf("snapshot has %d entries, want the 100 flushed", got.Len())
	}
	if _, ok := got.Get(blobKey("r", "unflushed")); ok {
		t.Error("an entry recorded after the flush reached the disk before the next flush")
	}
}

func TestBatchedWrites(t *testing.T) {
	clk := newClock()
	ix, _ := openTest(t, WithClock(clk.Now))
	keys := make([]Key, 100)
	for i := range keys {
		keys[i] = blobKey("r", fmt.Sprintf("layer-%d", i))
		ix.Record(Entry{Key: keys[i], Size: 1})
	}
	if c := ix.commits.Load(); c != 0 {
		t.Fatalf("%d write transactions before the first flush", c)
	}
	if err := ix.Flush(); err != nil {
		t.Fatal(err)
	}
	before := ix.db.Stats().TxStats
	for i := range 10_000 {
		clk.Add(time.Millisecond)
		ix.Touch(keys[i%len(keys)])
	}
	after := ix.db.Stats().TxStats
	if c := ix.commits.Load(); c != 1 {
		t.Errorf("10k touches: %d write transactions before the flush interval, want none beyond the first flush", c-1)
	}
	if w := after.GetWrite() - before.GetWrite(); w != 0 {
		t.Errorf("10k touches wrote %d pages before the flush", w)
	}
	if err := ix.Flush(); err != nil {
		t.Fatal(err)
	}
	if c := ix.commits.Load(); c != 2 {
		t.Errorf("flushing 10k touches took %d transactions, want 1", c-1)
	}
	if err := ix.Flush(); err != nil {
		t.Fatal(err)
	}
	if c := ix.commits.Load(); c != 2 {
		t.Error("a flush with nothing pending wrote a transaction")
	}
}

// With a real flush interval, transactions follow the ticker, not the touches.
func TestBatchedWritesByInterval(t *testing.T) {
	const interval = 50 * time.Millisecond
	ix, _ := openTest(t, WithFlushInterval(interval))
	k := blobKey("r", "hot")
	ix.Record(Entry{Key: k, Size: 1})
	start := time.Now()
	for burst := range 4 {
		for range 2500 {
			ix.Touch(k)
		}
		if burst < 3 {
			time.Sleep(interval + 10*time.Millisecond)
		}
	}
	elapsed := time.Since(start)
	if err := ix.Flush(); err != nil {
		t.Fatal(err)
	}
	limit := int64(elapsed/interval) + 2
	c := ix.commits.Load()
	if c < 1 || c > limit {
		t.Errorf("10k touches over %v: %d write transactions, want 1..%d", elapsed, c, limit)
	}
	t.Logf("10k touches over %v: %d write transactions", elapsed, c)
}

func TestTotalSizeCountsContentOnce(t *testing.T) {
	tests := []struct {
		name    string
		entries []Entry
		want    int64
	}{
		{"one blob", []Entry{{Key: blobKey("a", "x"), Size: 100}}, 100},
		{"blob in two repositories", []Entry{{Key: blobKey("a", "x"), Size: 100}, {Key: blobKey("b", "x"), Size: 100}}, 100},
		{"recorded twice", []Entry{{Key: blobKey("a", "x"), Size: 100}, {Key: blobKey("a", "x"), Size: 100}}, 100},
		{"manifest and blob", []Entry{{Key: blobKey("a", "x"), Size: 100}, {Key: manifestKey("a", "m"), Size: 7}}, 107},
		{"tags weigh nothing", []Entry{{Key: tagKey("a", "t", "m"), Size: 99}, {Key: manifestKey("a", "m"), Size: 7}}, 7},
		{"size learned later", []Entry{{Key: blobKey("a", "x")}, {Key: blobKey("b", "x"), Size: 100}}, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix, _ := openTest(t)
			for _, e := range tt.entries {
				ix.Record(e)
			}
			if got := ix.TotalSize(); got != tt.want {
				t.Errorf("TotalSize = %d, want %d", got, tt.want)
			}
			if err := ix.Remove(tt.entries[0].Key); err != nil {
				t.Fatal(err)
			}
			for _, e := range tt.entries[1:] {
				if err := ix.Remove(e.Key); err != nil {
					t.Fatal(err)
				}
			}
			if got := ix.TotalSize(); got != 0 || ix.Len() != 0 {
				t.Errorf("after removing all: %d bytes, %d entries", got, ix.Len())
			}
		})
	}
}

func TestRecordRejectsInvalid(t *testing.T) {
	for _, k := range []Key{
		{Kind: KindBlob, Repo: "r", Digest: "sha256:short"},
		{Kind: KindBlob, Digest: dgst("x")},
		{Kind: KindTag, Repo: "r", Digest: dgst("x")},
		{Kind: KindTag, Repo: "r", Tag: "t"},
		{Kind: 9, Repo: "r", Digest: dgst("x")},
		{Kind: KindManifest, Repo: "a\x00b", Digest: dgst("x")},
	} {
		ix, _ := openTest(t)
		ix.Record(Entry{Key: k, Size: 1})
		if ix.Len() != 0 {
			t.Errorf("%+v was recorded", k)
		}
	}
}

func TestNextExpiryFollowsTouches(t *testing.T) {
	clk := newClock()
	ix, _ := openTest(t, WithClock(clk.Now), WithTTL(time.Hour))
	if _, ok := ix.NextExpiry(); ok {
		t.Error("an empty index has a next expiry")
	}
	ix.Record(Entry{Key: blobKey("r", "a"), Size: 1})
	tb := clk.Add(time.Minute)
	ix.Record(Entry{Key: blobKey("r", "b"), Size: 1})
	ta := clk.Add(time.Minute)
	steps := []struct {
		name  string
		touch Key
		want  time.Time
	}{
		{"a touched: b is the oldest", blobKey("r", "a"), tb.Add(time.Hour)},
		{"an unknown key changes nothing", blobKey("r", "missing"), tb.Add(time.Hour)},
		{"b touched later: a is the oldest", blobKey("r", "b"), ta.Add(time.Hour)},
	}
	for i, s := range steps {
		if i == 2 {
			clk.Add(time.Minute)
		}
		ix.Touch(s.touch)
		if next, ok := ix.NextExpiry(); !ok || !next.Equal(s.want) {
			t.Errorf("%s: NextExpiry = %v, want %v", s.name, next, s.want)
		}
	}
	bTouched := clk.Now()
	now := clk.Add(time.Minute)
	ix.Record(Entry{Key: blobKey("r", "a"), Size: 1}) // recording again refreshes
	if e, _ := ix.Get(blobKey("r", "a")); !e.LastAccess.Equal(now) {
		t.Errorf("recorded again at %v: LastAccess = %v", now, e.LastAccess)
	}
	old := now.Add(-24 * time.Hour)
	ix.Record(Entry{Key: blobKey("r", "c"), Size: 1, LastAccess: old})
	if next, _ := ix.NextExpiry(); !next.Equal(old.Add(time.Hour)) {
		t.Errorf("after recording c accessed %v: NextExpiry = %v", old, next)
	}
	ix.Touch(blobKey("r", "c"))
	if next, _ := ix.NextExpiry(); !next.Equal(bTouched.Add(time.Hour)) {
		t.Errorf("after touching c: NextExpiry = %v, want b's %v", next, bTouched.Add(time.Hour))
	}

	ix2, _ := openTest(t, WithTTL(0))
	ix2.Record(Entry{Key: blobKey("r", "a"), Size: 1})
	if _, ok := ix2.NextExpiry(); ok {
		t.Error("TTL 0: entries expire")
	}
}

func TestReconcile(t *testing.T) {
	clk := newClock()
	ix, path := openTest(t, WithClock(clk.Now))
	ix.Record(Entry{Key: blobKey("r", "kept"), Size: 10})
	ix.Record(Entry{Key: blobKey("r", "gone"), Size: 20})
	ix.Record(Entry{Key: tagKey("r", "latest", "old")})
	if err := ix.Flush(); err != nil {
		t.Fatal(err)
	}
	mtime := clk.Now().Add(-48 * time.Hour)
	present := []Entry{
		{Key: blobKey("r", "kept"), Size: 10},
		{Key: blobKey("r", "new"), Size: 30, LastAccess: mtime},
		{Key: tagKey("r", "latest", "moved")},
	}
	added, dropped, err := ix.Reconcile(context.Background(), present)
	if err != nil || added != 1 || dropped != 1 {
		t.Fatalf("Reconcile = %d added, %d dropped, %v; want 1, 1", added, dropped, err)
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	ix = openAt(t, path, WithClock(clk.Now))
	if _, ok := ix.Get(blobKey("r", "gone")); ok {
		t.Error("entry of content gone from disk survived")
	}
	if e, ok := ix.Get(blobKey("r", "new")); !ok || !e.LastAccess.Equal(mtime) || e.Size != 30 {
		t.Errorf("added entry = %+v %v, want size 30 accessed %v", e, ok, mtime)
	}
	if e, ok := ix.Get(tagKey("r", "latest", "")); !ok || e.Digest != dgst("moved") {
		t.Errorf("tag = %+v, want it pointing where storage says", e)
	}
	if got := ix.TotalSize(); got != 40 {
		t.Errorf("TotalSize = %d, want 40", got)
	}
	if next, _ := ix.NextExpiry(); !next.Equal(mtime.Add(DefaultTTL)) {
		t.Errorf("NextExpiry = %v, want the added entry's %v", next, mtime.Add(DefaultTTL))
	}
}

// A flush that fails keeps its records and removals pending for the next one.
func TestFlushFailureKeepsPending(t *testing.T) {
	ix, path := openTest(t)
	ix.Record(Entry{Key: blobKey("r", "a"), Size: 1})
	ix.Record(Entry{Key: blobKey("r", "b"), Size: 1})
	if err := ix.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := ix.db.Close(); err != nil { // the disk goes away
		t.Fatal(err)
	}
	ix.Record(Entry{Key: blobKey("r", "c"), Size: 1})
	if err := ix.Remove(blobKey("r", "a")); err == nil {
		t.Fatal("Remove reported success without a database")
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second}) // it is back
	if err != nil {
		t.Fatal(err)
	}
	ix.db = db
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	ix = openAt(t, path)
	for k, want := range map[string]bool{"a": false, "b": true, "c": true} {
		if _, ok := ix.Get(blobKey("r", k)); ok != want {
			t.Errorf("%s in the index after the retried flush: %v, want %v", k, ok, want)
		}
	}
}
