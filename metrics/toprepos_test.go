package metrics

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// clock is a settable time for the counter.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestTopReposWindows(t *testing.T) {
	c := &clock{time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	top := NewTopRepos(8, c.now)
	pull := func(repo string, n int) {
		for range n {
			top.Pull(repo)
		}
	}
	pull("old/gone", 50) // 25h before the reads: in no window
	c.t = c.t.Add(23 * time.Hour)
	pull("library/redis", 7) // 2h before: the day only
	c.t = c.t.Add(90 * time.Minute)
	pull("library/alpine", 3)
	c.t = c.t.Add(20 * time.Minute)
	pull("library/redis", 2)
	pull("ghcr.io/owner/app", 3)
	c.t = c.t.Add(10 * time.Minute)
	cases := []struct {
		window time.Duration
		want   string
	}{
		{time.Hour, "ghcr.io/owner/app=3 library/alpine=3 library/redis=2"},
		{24 * time.Hour, "library/redis=9 ghcr.io/owner/app=3 library/alpine=3"},
		{10 * time.Minute, "ghcr.io/owner/app=3 library/redis=2"},
	}
	for _, tc := range cases {
		if got := render(top.Top(tc.window, 10)); got != tc.want {
			t.Errorf("top of %v: %s, want %s", tc.window, got, tc.want)
		}
	}
	if got := render(top.Top(24*time.Hour, 1)); got != "library/redis=9" {
		t.Errorf("top 1: %s", got)
	}
	var nilTop *TopRepos
	nilTop.Pull("x")
	if nilTop.Top(time.Hour, 3) != nil {
		t.Error("a nil counter counted")
	}
}

func render(rs []RepoPulls) string {
	var parts []string
	for _, r := range rs {
		s := fmt.Sprintf("%s=%d", r.Repo, r.Pulls)
		if r.Over > 0 {
			s += fmt.Sprintf("(+%d)", r.Over)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

// TestTopReposHeavyHitter: among many more names than a bucket tracks, the
// repositories pulled more than pulls/capacity times are still found, ranked
// by a lower bound of their pulls that the true count lies within Over of.
func TestTopReposHeavyHitter(t *testing.T) {
	c := &clock{time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	top := NewTopRepos(32, c.now)
	for i := range 2000 { // 2300 pulls: guaranteed above 2300/32 = 72
		top.Pull(fmt.Sprintf("scan/repo-%d", i))
		if i%10 == 0 {
			top.Pull("library/busy") // 200
		}
		if i%20 == 0 {
			top.Pull("library/second") // 100
		}
	}
	got := top.Top(time.Hour, 3)
	if len(got) != 3 || got[0].Repo != "library/busy" || got[1].Repo != "library/second" {
		t.Fatalf("top %s, want library/busy then library/second", render(got))
	}
	for i, want := range []int64{200, 100} {
		if g := got[i]; g.Pulls > want || g.Pulls+g.Over < want {
			t.Errorf("%s: %d..%d pulls, true count %d", g.Repo, g.Pulls, g.Pulls+g.Over, want)
		}
	}
	if got[2].Pulls > 2 {
		t.Errorf("a repository pulled once ranks with %d pulls", got[2].Pulls)
	}
	for _, b := range top.hour.buckets {
		if len(b.counts) > 32 {
			t.Errorf("a bucket tracks %d names, capacity 32", len(b.counts))
		}
	}
}

// TestTopReposMemoryBound fills every bucket of a default counter with
// distinct 60-byte names, many more than it tracks, and measures the heap it
// holds.
func TestTopReposMemoryBound(t *testing.T) {
	c := &clock{time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	top := NewTopRepos(0, c.now)
	name := strings.Repeat("n", 50)
	for step := range 24 * 12 { // a day in 5-minute steps: every bucket full
		for i := range DefaultTopReposCapacity {
			top.Pull(fmt.Sprintf("%s-%02d-%04d", name, step/12, i)) // the hour's names
		}
		for i := range 8 { // and some that displace others
			top.Pull(fmt.Sprintf("%s-%04d-x%d", name, step, i))
		}
		c.t = c.t.Add(5 * time.Minute)
	}
	c.t = c.t.Add(-5 * time.Minute)
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d buckets of %d names: %d KiB held", hourBuckets+dayBuckets, DefaultTopReposCapacity, held/1024)
	if held > 4<<20 {
		t.Errorf("the counter holds %d bytes, want under 4 MiB", held)
	}
	if n := len(top.Top(24*time.Hour, 1000)); n > dayBuckets*DefaultTopReposCapacity {
		t.Errorf("%d names tracked", n)
	}
	runtime.KeepAlive(top)
}
