package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"testing"
	"time"
)

// evictTest is an index with a fake clock and a fake deleter.
type evictTest struct {
	t    *testing.T
	clk  *clock
	ix   *Index
	path string
	d    *fakeDeleter
	ev   *Evictor
	opts []Option // further index options, kept by reopen
}

func newEvictTest(t *testing.T, ttl time.Duration, opts ...EvictOption) *evictTest {
	return newEvictTestWith(t, []Option{WithTTL(ttl)}, opts...)
}

// newEvictTestWith is newEvictTest with index options (TTLs).
func newEvictTestWith(t *testing.T, ixOpts []Option, opts ...EvictOption) *evictTest {
	clk := newClock()
	ix, path := openTest(t, append([]Option{WithClock(clk.Now)}, ixOpts...)...)
	d := newFakeDeleter()
	return &evictTest{t: t, clk: clk, ix: ix, path: path, d: d, ev: NewEvictor(ix, d, opts...), opts: ixOpts}
}

// reopen closes the index and opens its file again, as a restart does.
func (et *evictTest) reopen() {
	et.t.Helper()
	if err := et.ix.Close(); err != nil {
		et.t.Fatal(err)
	}
	et.ix = openAt(et.t, et.path, append([]Option{WithClock(et.clk.Now)}, et.opts...)...)
	et.ev = NewEvictor(et.ix, et.d, WithMaxSize(et.ev.maxSize), WithLowWater(et.ev.lowWater))
}

// pass runs EvictOnce at the fake clock's time and checks the calls it made.
func (et *evictTest) pass(want ...string) Stats {
	et.t.Helper()
	st, err := et.ev.EvictOnce(context.Background(), et.clk.Now())
	if err != nil && st.Failed == 0 {
		et.t.Fatalf("EvictOnce: %v", err)
	}
	if got := et.d.take(); !slices.Equal(got, want) {
		et.t.Errorf("at %v: deletions\n got %q\nwant %q", et.clk.Now().Format(time.TimeOnly), got, want)
	}
	return st
}

func (et *evictTest) has(k Key, want bool) {
	et.t.Helper()
	if _, ok := et.ix.Get(k); ok != want {
		et.t.Errorf("%s in the index: %v, want %v", k, ok, want)
	}
}

// image records a tag, its manifest and one layer in repo.
func (et *evictTest) image(repo, tag, manifest, layer string, layerSize int64) {
	et.ix.Record(Entry{Key: blobKey(repo, layer), Size: layerSize})
	et.ix.Record(Entry{Key: manifestKey(repo, manifest), Size: 10})
	et.ix.Record(Entry{Key: tagKey(repo, tag, manifest)})
}

func TestEvictExpiredInOrder(t *testing.T) {
	et := newEvictTest(t, time.Hour)
	et.image("library/alpine", "3.20", "m", "layer", 100)

	et.clk.Add(59 * time.Minute)
	et.pass() // nothing expired yet
	et.clk.Add(time.Minute)
	st := et.pass(
		callTag("library/alpine", "3.20"),
		callManifest("library/alpine", "m"),
		callUnlink("library/alpine", "layer"),
		callBlob("m"),
		callBlob("layer"),
	)
	want := Stats{Tags: 1, Manifests: 1, Links: 1, Blobs: 2, Bytes: 110, ManifestBlobs: 1, ManifestBytes: 10}
	if st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	if et.ix.Len() != 0 || et.ix.TotalSize() != 0 {
		t.Errorf("after the pass: %d entries, %d bytes", et.ix.Len(), et.ix.TotalSize())
	}
	et.reopen()
	if et.ix.Len() != 0 {
		t.Errorf("after a restart: %d entries; the pass did not write its removals", et.ix.Len())
	}
}

// An item pulled while the pass runs stays: its entry is fresh again.
func TestEvictSparesWhatIsPulledMeanwhile(t *testing.T) {
	et := newEvictTest(t, time.Hour)
	et.image("r", "v1", "m", "layer", 100)
	et.clk.Add(time.Hour)
	et.d.hook = func(call string) {
		if call == callTag("r", "v1") {
			et.clk.Add(time.Second)
			et.ix.Touch(blobKey("r", "layer"))
		}
	}
	st := et.pass(callTag("r", "v1"), callManifest("r", "m"), callBlob("m"))
	if st.Skipped != 1 || st.Links != 0 {
		t.Errorf("stats = %+v, want the layer skipped", st)
	}
	et.has(blobKey("r", "layer"), true)
}

func TestEvictSharedBlobStaysWhileLinked(t *testing.T) {
	et := newEvictTest(t, time.Hour)
	et.ix.Record(Entry{Key: blobKey("a", "shared"), Size: 100})
	et.clk.Add(30 * time.Minute)
	et.ix.Record(Entry{Key: blobKey("b", "shared"), Size: 100})
	if got := et.ix.TotalSize(); got != 100 {
		t.Fatalf("TotalSize = %d, want the shared blob once", got)
	}

	et.clk.Add(30 * time.Minute) // a's link expired, b's not
	st := et.pass(callUnlink("a", "shared"))
	if st.Blobs != 0 || st.Links != 1 || st.Bytes != 0 {
		t.Errorf("stats = %+v, want one link and no content", st)
	}
	et.has(blobKey("a", "shared"), false)
	et.has(blobKey("b", "shared"), true)
	if got := et.ix.TotalSize(); got != 100 {
		t.Errorf("TotalSize = %d while b links it", got)
	}

	et.clk.Add(30 * time.Minute)
	et.pass(callUnlink("b", "shared"), callBlob("shared"))
}

// A tag that stays keeps the manifest it points at, else the tag would dangle.
func TestEvictKeepsManifestOfLiveTag(t *testing.T) {
	et := newEvictTest(t, time.Hour)
	et.image("r", "latest", "m", "layer", 100)
	et.clk.Add(50 * time.Minute)
	et.ix.Touch(tagKey("r", "latest", "m"))
	et.clk.Add(10 * time.Minute)
	et.pass(callUnlink("r", "layer"), callBlob("layer"))
	et.has(manifestKey("r", "m"), true)
	et.clk.Add(50 * time.Minute)
	et.pass(callTag("r", "latest"), callManifest("r", "m"), callBlob("m"))
}

func TestTouchPostponesExpiry(t *testing.T) {
	et := newEvictTest(t, time.Hour)
	k := blobKey("r", "layer")
	et.ix.Record(Entry{Key: k, Size: 1})
	touched := et.clk.Add(50 * time.Minute)
	et.ix.Touch(k)
	et.clk.Add(20 * time.Minute)
	et.pass()
	if next, _ := et.ix.NextExpiry(); !next.Equal(touched.Add(time.Hour)) {
		t.Errorf("NextExpiry = %v, want %v", next, touched.Add(time.Hour))
	}
	et.clk.Add(40 * time.Minute)
	et.pass(callUnlink("r", "layer"), callBlob("layer"))
}

func TestEvictSkipsInUse(t *testing.T) {
	et := newEvictTest(t, time.Hour)
	et.image("r", "v1", "m", "layer", 100)
	et.d.set(dgst("layer"), true, "", nil)
	et.clk.Add(time.Hour)
	st := et.pass(callTag("r", "v1"), callManifest("r", "m"), callBlob("m"))
	if st.Skipped != 1 {
		t.Errorf("stats = %+v, want the layer skipped", st)
	}
	et.has(blobKey("r", "layer"), true)

	et.d.set(dgst("layer"), false, "", nil)
	et.pass(callUnlink("r", "layer"), callBlob("layer"))
	et.has(blobKey("r", "layer"), false)
}

func TestEvictDeletionErrors(t *testing.T) {
	boom := errors.New("disk on fire")
	notFound := fmt.Errorf("stat: %w", fs.ErrNotExist)
	tests := []struct {
		name      string
		failCall  string
		err       error
		first     []string // calls of the first pass
		kept      bool     // the entry survives the first pass
		second    []string // calls of the next pass, the fault gone
		wantError bool
	}{
		{
			name: "unlink fails", failCall: callUnlink("r", "layer"), err: boom,
			first: []string{callUnlink("r", "layer")}, kept: true,
			second: []string{callUnlink("r", "layer"), callBlob("layer")}, wantError: true,
		},
		{
			name: "content deletion fails", failCall: callBlob("layer"), err: boom,
			first: []string{callUnlink("r", "layer"), callBlob("layer")}, kept: true,
			second: []string{callUnlink("r", "layer"), callBlob("layer")}, wantError: true,
		},
		{
			name: "not found is success", failCall: callUnlink("r", "layer"), err: notFound,
			first: []string{callUnlink("r", "layer"), callBlob("layer")}, kept: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			et := newEvictTest(t, time.Hour)
			et.ix.Record(Entry{Key: blobKey("r", "layer"), Size: 100})
			et.ix.Record(Entry{Key: blobKey("r", "other"), Size: 1})
			et.d.set("", false, tt.failCall, tt.err)
			et.clk.Add(time.Hour)

			st, err := et.ev.EvictOnce(context.Background(), et.clk.Now())
			if (err != nil) != tt.wantError || (st.Failed > 0) != tt.wantError {
				t.Errorf("error = %v, stats %+v; want an error: %v", err, st, tt.wantError)
			}
			got := et.d.take()
			got = slices.DeleteFunc(got, func(c string) bool { return c == callUnlink("r", "other") || c == callBlob("other") })
			if !slices.Equal(got, tt.first) {
				t.Errorf("first pass: %q, want %q", got, tt.first)
			}
			et.has(blobKey("r", "layer"), tt.kept)
			et.has(blobKey("r", "other"), false) // one failure does not stop the pass

			et.d.set("", false, tt.failCall, nil)
			et.pass(tt.second...)
			et.has(blobKey("r", "layer"), false)
		})
	}
}

func TestEvictSizeCap(t *testing.T) {
	type rec struct {
		key  Key
		size int64
	}
	tests := []struct {
		name      string
		max       int64
		low       float64
		entries   []rec // recorded a minute apart, oldest first
		inUse     string
		want      []string
		wantTotal int64
	}{
		{
			name: "least recently used down to low water", max: 1000, low: 0.9,
			entries: []rec{{blobKey("r", "1"), 300}, {blobKey("r", "2"), 300}, {blobKey("r", "3"), 300}, {blobKey("r", "4"), 300}, {blobKey("r", "5"), 300}},
			want:    []string{callUnlink("r", "1"), callUnlink("r", "2"), callBlob("1"), callBlob("2")},
			// 1500 -> 900
			wantTotal: 900,
		},
		{
			name: "a shared blob frees nothing until its last link goes", max: 1000, low: 0.9,
			entries: []rec{{blobKey("x", "s"), 600}, {blobKey("r", "1"), 300}, {blobKey("r", "2"), 300}, {blobKey("y", "s"), 600}},
			want:    []string{callUnlink("x", "s"), callUnlink("r", "1"), callBlob("1")},
			// 1200 -> 900, s still linked by y
			wantTotal: 900,
		},
		{
			name: "in-use content is passed over", max: 1000, low: 0.75,
			entries: []rec{{blobKey("r", "1"), 300}, {blobKey("r", "2"), 300}, {blobKey("r", "3"), 300}, {blobKey("r", "4"), 300}},
			inUse:   "1",
			want:    []string{callUnlink("r", "2"), callUnlink("r", "3"), callBlob("2"), callBlob("3")},
			// 1200 -> 600; 1 stays
			wantTotal: 600,
		},
		{
			name: "tag, manifest, link, content order", max: 100, low: 0.9,
			entries: []rec{{tagKey("r", "t", "m"), 0}, {manifestKey("r", "m"), 50}, {blobKey("r", "l"), 100}, {blobKey("r", "new"), 10}},
			want:    []string{callTag("r", "t"), callManifest("r", "m"), callUnlink("r", "l"), callBlob("m"), callBlob("l")},
			// 160 -> 10
			wantTotal: 10,
		},
		{
			name: "links in kind order whatever their age", max: 100, low: 0.9,
			entries: []rec{{blobKey("r", "l"), 20}, {tagKey("r", "t", "m"), 0}, {manifestKey("r", "m"), 100}, {blobKey("r", "new"), 10}},
			want:    []string{callTag("r", "t"), callManifest("r", "m"), callUnlink("r", "l"), callBlob("m"), callBlob("l")},
			// 130 -> 10
			wantTotal: 10,
		},
		{
			name: "under the cap nothing goes", max: 1000, low: 0.9,
			entries:   []rec{{blobKey("r", "1"), 600}, {blobKey("r", "2"), 400}},
			wantTotal: 1000,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			et := newEvictTest(t, 0, WithMaxSize(tt.max), WithLowWater(tt.low))
			for _, e := range tt.entries {
				et.ix.Record(Entry{Key: e.key, Size: e.size})
				et.clk.Add(time.Minute)
			}
			if tt.inUse != "" {
				et.d.set(dgst(tt.inUse), true, "", nil)
			}
			et.pass(tt.want...)
			if got := et.ix.TotalSize(); got != tt.wantTotal {
				t.Errorf("TotalSize = %d, want %d", got, tt.wantTotal)
			}
		})
	}
}

// Run sleeps until the next expiry, however short the TTL.
func TestRunWakesAtExpiry(t *testing.T) {
	ix, _ := openTest(t, WithTTL(50*time.Millisecond))
	d := newFakeDeleter()
	d.deleted = make(chan string, 8)
	ev := NewEvictor(ix, d)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ev.Run(ctx); close(done) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	}()

	time.Sleep(10 * time.Millisecond) // Run is asleep on an empty index
	start := time.Now()
	ix.Record(Entry{Key: blobKey("r", "layer"), Size: 1})
	waitFor(t, d.deleted, callBlob("layer"), 5*time.Second)
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Errorf("evicted after %v, before the TTL", took)
	}
	// The pass drops the entry just after the deletion the fake reported.
	for deadline := time.Now().Add(5 * time.Second); ix.Len() != 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if ix.Len() != 0 {
		t.Errorf("%d entries left 5s after the deletion", ix.Len())
	}
}

// Run wakes when a Record pushes the content over the cap.
func TestRunWakesOverCap(t *testing.T) {
	ix, _ := openTest(t, WithTTL(0))
	d := newFakeDeleter()
	d.deleted = make(chan string, 8)
	ev := NewEvictor(ix, d, WithMaxSize(1000))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ev.Run(ctx)

	time.Sleep(10 * time.Millisecond)
	ix.Record(Entry{Key: blobKey("r", "old"), Size: 600})
	time.Sleep(10 * time.Millisecond)
	ix.Record(Entry{Key: blobKey("r", "new"), Size: 600})
	waitFor(t, d.deleted, callBlob("old"), 5*time.Second)
}

// A pass that cannot meet the cap (the content is in use) is retried after a
// pause, not after every Record.
func TestRunBacksOffWhenStuck(t *testing.T) {
	ix, _ := openTest(t, WithTTL(0))
	d := newFakeDeleter()
	d.set(dgst("big"), true, "", nil)
	ev := NewEvictor(ix, d, WithMaxSize(100))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ev.Run(ctx)

	ix.Record(Entry{Key: blobKey("r", "big"), Size: 1000})
	for i := range 200 {
		time.Sleep(time.Millisecond)
		ix.Record(Entry{Key: blobKey("r", fmt.Sprint(i)), Size: 1})
	}
	d.mu.Lock()
	passes := d.asked[dgst("big")]
	d.mu.Unlock()
	if passes == 0 || passes > 5 {
		t.Errorf("%d passes while stuck over the cap, want a few", passes)
	}
}

func waitFor(t *testing.T, calls <-chan string, want string, limit time.Duration) {
	t.Helper()
	deadline := time.After(limit)
	for {
		select {
		case c := <-calls:
			if c == want {
				return
			}
		case <-deadline:
			t.Fatalf("no %q within %v", want, limit)
		}
	}
}
