package scheduler

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocimirror/proxy/internal/syncbuf"

	"github.com/sirupsen/logrus"
)

func TestPinned(t *testing.T) {
	pinned := Pinned(Pin{Repo: "library/alpine"}, Pin{Repo: "team/*", Tag: "v1.*"}, Pin{Repo: "ghcr.io/owner/app"})
	tests := []struct {
		key  Key
		want bool
	}{
		{tagKey("library/alpine", "3.20", "m"), true},
		{manifestKey("library/alpine", "m"), true},
		{blobKey("library/alpine", "l"), true},
		{blobKey("library/alpine-extra", "l"), false},
		{blobKey("library/alpine/sub", "l"), false},
		{tagKey("team/app", "v1.2", "m"), true},
		{tagKey("team/app", "v2.0", "m"), false},
		{manifestKey("team/app", "m"), true}, // a tag of it is pinned: its links stay
		{blobKey("team/app", "l"), true},
		{blobKey("team/app/sub", "l"), false}, // '*' stays within a path component
		{blobKey("ghcr.io/owner/app", "l"), true},
		{blobKey("owner/app", "l"), false},
	}
	for _, tt := range tests {
		if got := pinned(tt.key); got != tt.want {
			t.Errorf("%s: pinned %v, want %v", tt.key, got, tt.want)
		}
	}
	if Pinned(Pin{Repo: "[a"})(blobKey("[a", "l")) {
		t.Error("a malformed pattern matched")
	}
}

// A pinned repository stays, whether its entries expired or the cap is exceeded,
// and the size-cap passes end when only pinned content is left.
func TestEvictPinnedRepo(t *testing.T) {
	team := func(calls ...string) []string { return calls }
	tests := []struct {
		name   string
		ttl    time.Duration
		max    int64
		passes [][]string // the calls of each pass, until one has nothing to do
	}{
		{
			name: "ttl", ttl: time.Hour,
			passes: [][]string{team(callTag("team/app", "v1"), callManifest("team/app", "m2"),
				callUnlink("team/app", "l2"), callBlob("m2"), callBlob("l2"))},
		},
		{
			name: "cap", max: 150, // 220 bytes, down to 135
			passes: [][]string{team(callUnlink("team/app", "l2"), callBlob("l2"))},
		},
		{
			name: "cap below the pinned content", max: 50,
			passes: [][]string{
				team(callTag("team/app", "v1"), callUnlink("team/app", "l2"), callBlob("l2")),
				team(callManifest("team/app", "m2"), callBlob("m2")), // its tag went in the first pass
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			et := newEvictTest(t, tt.ttl, WithMaxSize(tt.max), WithPinned(Pinned(Pin{Repo: "library/*"})))
			et.image("library/alpine", "3.20", "m1", "l1", 100) // older than team/app
			et.clk.Add(time.Minute)
			et.image("team/app", "v1", "m2", "l2", 100)
			et.clk.Add(2 * time.Hour)
			for _, calls := range tt.passes {
				if st := et.pass(calls...); st.Pinned != 3 {
					t.Errorf("stats %+v, want 3 pinned", st)
				}
			}
			et.pass()
			et.has(tagKey("library/alpine", "3.20", "m1"), true)
			et.has(manifestKey("library/alpine", "m1"), true)
			et.has(blobKey("library/alpine", "l1"), true)
		})
	}
}

// A pinned tag stays with its manifest and layers while another tag of the same
// repository goes.
func TestEvictPinnedTag(t *testing.T) {
	et := newEvictTest(t, time.Hour, WithPinned(Pinned(Pin{Repo: "team/app", Tag: "v1.*"})))
	et.image("team/app", "v1.0", "m1", "l1", 100)
	et.image("team/app", "v2.0", "m2", "l2", 100)
	et.clk.Add(time.Hour)
	st := et.pass(callTag("team/app", "v2.0"))
	if st.Tags != 1 || st.Pinned != 5 {
		t.Errorf("stats %+v, want one tag removed and five entries pinned", st)
	}
	et.has(tagKey("team/app", "v1.0", "m1"), true)
	et.has(manifestKey("team/app", "m1"), true)
	et.has(blobKey("team/app", "l1"), true)
	et.has(tagKey("team/app", "v2.0", "m2"), false)
	et.has(manifestKey("team/app", "m2"), true) // the repository's links stay: see Pinned
}

// A pinned entry never expires: Run sleeps until the first unpinned entry
// expires instead of retrying a pass that keeps finding pinned entries due.
func TestNextWaitPassesOverPinned(t *testing.T) {
	et := newEvictTest(t, time.Hour, WithPinned(Pinned(Pin{Repo: "pinned"})))
	et.ix.Record(Entry{Key: blobKey("pinned", "old"), Size: 1})
	et.clk.Add(30 * time.Minute)
	et.ix.Record(Entry{Key: blobKey("r", "new"), Size: 1})
	now := et.clk.Add(45 * time.Minute) // "old" expired 15 minutes ago; "new" expires in 15
	et.pass()
	et.ev.maxWait = time.Hour
	wait, stuck := et.ev.nextWait(now)
	if stuck || wait != 15*time.Minute {
		t.Errorf("nextWait = %v, stuck %v; want 15m, not stuck", wait, stuck)
	}
}

// Plan reports what a pass at the same time then does, and deletes nothing.
func TestPlanIsADryRun(t *testing.T) {
	tests := []struct {
		name  string
		ttl   time.Duration
		max   int64
		setup func(et *evictTest)
	}{
		{"expired image", time.Hour, 0, func(et *evictTest) {
			et.image("r", "v1", "m", "layer", 100)
			et.clk.Add(time.Hour)
		}},
		{"shared blob", time.Hour, 0, func(et *evictTest) {
			et.image("a", "v1", "m", "shared", 100)
			et.clk.Add(30 * time.Minute)
			et.image("b", "v1", "m", "shared", 100)
			et.clk.Add(30 * time.Minute)
		}},
		{"size cap", 0, 250, func(et *evictTest) {
			for _, l := range []string{"1", "2", "3"} {
				et.ix.Record(Entry{Key: blobKey("r", l), Size: 100})
				et.clk.Add(time.Minute)
			}
		}},
		{"in use and pinned", time.Hour, 0, func(et *evictTest) {
			et.image("r", "v1", "m", "layer", 100)
			et.image("pinned", "v1", "m", "layer2", 100)
			et.d.set(dgst("layer"), true, "", nil)
			et.clk.Add(time.Hour)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			et := newEvictTest(t, tt.ttl, WithMaxSize(tt.max), WithPinned(Pinned(Pin{Repo: "pinned"})))
			tt.setup(et)
			entries, total := et.ix.Len(), et.ix.TotalSize()
			planned := et.ev.Plan(et.clk.Now())
			if got := et.d.take(); len(got) != 0 {
				t.Fatalf("Plan deleted %q", got)
			}
			if et.ix.Len() != entries || et.ix.TotalSize() != total {
				t.Fatalf("Plan changed the index: %d entries, %d bytes; was %d, %d", et.ix.Len(), et.ix.TotalSize(), entries, total)
			}
			if planned.Tags+planned.Manifests+planned.Links == 0 {
				t.Fatalf("Plan found nothing to do: %+v", planned)
			}
			done, err := et.ev.EvictOnce(context.Background(), et.clk.Now())
			if err != nil {
				t.Fatal(err)
			}
			if planned != done {
				t.Errorf("Plan  %+v\nEvictOnce %+v", planned, done)
			}
			if et.ix.TotalSize() != total-planned.Bytes {
				t.Errorf("TotalSize %d after the pass, want %d", et.ix.TotalSize(), total-planned.Bytes)
			}
		})
	}
}

// When pinned content alone exceeds the cap, Run backs off instead of passing
// after every Record, and says so in the log once.
func TestRunPinnedOverCap(t *testing.T) {
	var logs syncbuf.Buffer
	l := logrus.New()
	l.SetOutput(&logs)
	ix, _ := openTest(t, WithTTL(0), WithLogger(logrus.NewEntry(l)))
	var passes atomic.Int32
	pinned := func(k Key) bool {
		if k.Repo != "pinned" {
			return false
		}
		if k.Kind == KindBlob {
			passes.Add(1) // one call per pass: the cap pass visits the pinned blob
		}
		return true
	}
	ev := NewEvictor(ix, newFakeDeleter(), WithMaxSize(100), WithPinned(pinned))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ev.Run(ctx); close(done) }()

	ix.Record(Entry{Key: blobKey("pinned", "big"), Size: 1000})
	for range 200 {
		time.Sleep(time.Millisecond)
		ix.Record(Entry{Key: tagKey("pinned", "t", "big")}) // wakes Run: over the cap
	}
	// On a loaded machine Run may not have had its first pass yet: wait for it.
	for deadline := time.Now().Add(5 * time.Second); passes.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if n := passes.Load(); n == 0 || n > 5 {
		t.Errorf("%d passes over pinned content, want a few", n)
	}
	if n := strings.Count(logs.String(), "pinned content keeps the cache above its size cap"); n != 1 {
		t.Errorf("warned %d times, want once:\n%s", n, logs.String())
	}
}
