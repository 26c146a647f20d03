package scheduler

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestRepoTTLLongestPrefix(t *testing.T) {
	ix, _ := openTest(t, WithTTL(5*time.Hour),
		WithRepoTTL("ghcr.io", time.Hour),
		WithRepoTTL("ghcr.io/team/", 2*time.Hour), // a trailing slash is the same prefix
		WithRepoTTL("quay.io", 0),
		WithRepoTTL("localhost:5001", 3*time.Hour),
		WithRepoTTL("localhost:5001", 4*time.Hour)) // a later rule for a prefix replaces it
	tests := []struct {
		repo string
		want time.Duration
	}{
		{"library/alpine", 5 * time.Hour},
		{"ghcr.io/owner/app", time.Hour},
		{"ghcr.io", time.Hour},
		{"ghcr.io/team/app", 2 * time.Hour},
		{"ghcr.io/teams/app", time.Hour}, // "team" is not a prefix of the component "teams"
		{"ghcr.iox/app", 5 * time.Hour},
		{"quay.io/x/y", 0},
		{"localhost:5001/app", 4 * time.Hour},
	}
	for _, tt := range tests {
		if got := ix.TTL(tt.repo); got != tt.want {
			t.Errorf("TTL(%q) = %v, want %v", tt.repo, got, tt.want)
		}
	}
}

// upstreamTTLs are the index options of two upstreams stored under their hosts,
// beside the default upstream (5h).
var upstreamTTLs = []Option{WithTTL(5 * time.Hour), WithRepoTTL("a.example", time.Hour), WithRepoTTL("b.example", 10*time.Hour)}

// TestEvictPerRepoTTL: upstream A's content lives 1h, B's 10h, the default
// upstream's 5h. A layer both A and B link stays while B's link lives. The
// schedule holds across a restart and a reconcile.
func TestEvictPerRepoTTL(t *testing.T) {
	const a, b, d = "a.example/app", "b.example/app", "library/d"
	steps := []struct {
		at       time.Duration // since the first item was recorded; they were recorded in 11s
		want     []string      // deletions of the pass at that time
		gone     []Key
		kept     []Key
		nextExp  time.Duration // NextExpiry afterwards (up to a minute later); 0: none
		wantSize int64
	}{
		{
			at: 59 * time.Minute, nextExp: time.Hour, wantSize: 100 + 10 + 5 + 20 + 5 + 30 + 5,
			kept: []Key{blobKey(a, "shared"), tagKey(a, "v1", "a-m")},
		},
		{
			at: 2 * time.Hour,
			want: []string{callTag(a, "v1"), callManifest(a, "a-m"), callUnlink(a, "shared"), callUnlink(a, "a-layer"),
				callBlob("a-m"), callBlob("a-layer")}, // not the shared layer: B links it
			gone:    []Key{tagKey(a, "v1", "a-m"), manifestKey(a, "a-m"), blobKey(a, "shared"), blobKey(a, "a-layer")},
			kept:    []Key{tagKey(b, "v1", "b-m"), manifestKey(b, "b-m"), blobKey(b, "shared"), blobKey(b, "b-layer"), blobKey(d, "d-layer")},
			nextExp: 5 * time.Hour, wantSize: 100 + 20 + 5 + 30 + 5,
		},
		{
			at:      5*time.Hour + time.Minute,
			want:    []string{callTag(d, "v1"), callManifest(d, "d-m"), callUnlink(d, "d-layer"), callBlob("d-m"), callBlob("d-layer")},
			kept:    []Key{blobKey(b, "shared")},
			nextExp: 10 * time.Hour, wantSize: 100 + 20 + 5,
		},
		{
			at: 10*time.Hour + time.Minute,
			want: []string{callTag(b, "v1"), callManifest(b, "b-m"), callUnlink(b, "shared"), callUnlink(b, "b-layer"),
				callBlob("b-m"), callBlob("shared"), callBlob("b-layer")},
			gone: []Key{blobKey(b, "shared")},
		},
	}
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			et := newEvictTestWith(t, upstreamTTLs)
			t0 := et.clk.Now()
			record := func(e Entry) { // a second apart: the order survives a restart
				e.LastAccess = et.clk.Add(time.Second)
				et.ix.Record(e)
			}
			for _, img := range []struct{ repo, m, layer string }{{a, "a-m", "a-layer"}, {b, "b-m", "b-layer"}, {d, "d-m", "d-layer"}} {
				if img.repo != d {
					record(Entry{Key: blobKey(img.repo, "shared"), Size: 100})
				}
				record(Entry{Key: manifestKey(img.repo, img.m), Size: int64(len(img.m) + 2)})
				record(Entry{Key: blobKey(img.repo, img.layer), Size: map[string]int64{a: 10, b: 20, d: 30}[img.repo]})
				record(Entry{Key: tagKey(img.repo, "v1", img.m)})
			}
			checkExpires(t, et.ix, blobKey(a, "shared"), t0.Add(time.Hour+time.Second))
			checkExpires(t, et.ix, blobKey(b, "shared"), t0.Add(10*time.Hour+5*time.Second))
			checkExpires(t, et.ix, blobKey(d, "d-layer"), t0.Add(5*time.Hour+10*time.Second))
			for _, s := range steps {
				if restart {
					et.reopen()
					et.reconcileAsIs()
				}
				et.clk.Add(t0.Add(s.at).Sub(et.clk.Now()))
				et.pass(s.want...)
				for _, k := range s.gone {
					et.has(k, false)
				}
				for _, k := range s.kept {
					et.has(k, true)
				}
				next, ok := et.ix.NextExpiry()
				if want := t0.Add(s.nextExp); ok != (s.nextExp > 0) || (ok && (next.Before(want) || !next.Before(want.Add(time.Minute)))) {
					t.Errorf("after the pass at +%v: NextExpiry = %v %v, want +%v", s.at, next, ok, s.nextExp)
				}
				if got := et.ix.TotalSize(); got != s.wantSize {
					t.Errorf("after the pass at +%v: TotalSize = %d, want %d", s.at, got, s.wantSize)
				}
			}
		})
	}
}

func checkExpires(t *testing.T, ix *Index, k Key, want time.Time) {
	t.Helper()
	if e, ok := ix.Get(k); !ok || !e.Expires.Equal(want) {
		t.Errorf("%s: Expires = %v (present %v), want %v", k, e.Expires, ok, want)
	}
}

// reconcileAsIs reconciles the index with a storage that holds exactly what
// the index has, as a start does; it must change no schedule.
func (et *evictTest) reconcileAsIs() {
	et.t.Helper()
	var present []Entry
	et.ix.mu.Lock()
	for _, x := range et.ix.entries {
		present = append(present, Entry{Key: x.key(), Size: x.size}) // no time: the stored one stays
	}
	et.ix.mu.Unlock()
	if added, dropped, err := et.ix.Reconcile(context.Background(), present); err != nil || added+dropped > 0 {
		et.t.Fatalf("Reconcile: %d added, %d dropped, %v", added, dropped, err)
	}
}

// The size cap evicts least recently used first across all TTLs.
func TestSizeCapAcrossTTLs(t *testing.T) {
	et := newEvictTestWith(t, upstreamTTLs, WithMaxSize(1000), WithLowWater(0.6))
	for i, repo := range []string{"b.example/x", "a.example/x", "library/x", "b.example/x", "a.example/x"} {
		et.ix.Record(Entry{Key: blobKey(repo, fmt.Sprint(i)), Size: 300})
		et.clk.Add(time.Minute)
	}
	// 1500 bytes, cap 1000, down to 600: the three oldest go, whatever their TTL.
	et.pass(callUnlink("b.example/x", "0"), callUnlink("a.example/x", "1"), callUnlink("library/x", "2"),
		callBlob("0"), callBlob("1"), callBlob("2"))
}

// Run wakes for an entry of a short TTL recorded after older entries of a
// long one: it is the oldest of its lane, and expires first.
func TestRunWakesAtShortestTTL(t *testing.T) {
	ix, _ := openTest(t, WithTTL(time.Hour), WithRepoTTL("fast.example", 50*time.Millisecond))
	d := newFakeDeleter()
	d.deleted = make(chan string, 8)
	ev := NewEvictor(ix, d)
	ix.Record(Entry{Key: blobKey("library/slow", "old"), Size: 1})
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

	time.Sleep(20 * time.Millisecond) // Run is asleep until the slow entry's expiry
	start := time.Now()
	ix.Record(Entry{Key: blobKey("fast.example/app", "layer"), Size: 1})
	waitFor(t, d.deleted, callBlob("layer"), 5*time.Second)
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Errorf("evicted after %v, before its TTL", took)
	}
	if _, ok := ix.Get(blobKey("library/slow", "old")); !ok {
		t.Error("the entry of the long TTL was evicted")
	}
}

// An index's platform manifests go after the index a tag pointed at, even when
// they were pulled first: a pass cut short never leaves an index whose
// platform manifests are gone.
func TestEvictTaggedManifestFirst(t *testing.T) {
	et := newEvictTest(t, time.Hour)
	et.ix.Record(Entry{Key: manifestKey("r", "amd64"), Size: 10})
	et.ix.Record(Entry{Key: manifestKey("r", "index"), Size: 10})
	et.ix.Record(Entry{Key: tagKey("r", "v1", "index")})
	et.clk.Add(time.Hour)
	et.pass(callTag("r", "v1"), callManifest("r", "index"), callManifest("r", "amd64"), callBlob("index"), callBlob("amd64"))
}
