package metrics

import (
	"sort"
	"sync"
	"time"
)

// DefaultTopReposCapacity is how many repositories one time bucket of
// TopRepos tracks: 36 buckets of at most 256 names each, 1.1 MiB of heap
// with 60-byte names (TestTopReposMemoryBound measures it).
const DefaultTopReposCapacity = 256

// The buckets: the last hour in 5-minute buckets, the last day in hourly
// ones. A window counts the buckets that started within it, so "the last
// hour" is the last 55 to 60 minutes.
const (
	hourBucket, hourBuckets = 5 * time.Minute, 12
	dayBucket, dayBuckets   = time.Hour, 24
)

// TopRepos counts pulls by repository over the last hour and the last day,
// for the console's most pulled repositories. Memory is bounded however many
// repositories are pulled: each time bucket tracks at most its capacity of
// names with the Space-Saving algorithm (Metwally et al.): a new name
// replaces the least counted one and inherits its count, so every repository
// pulled more than a bucket's pulls / capacity times is kept. Top ranks by
// the pulls counted while a name was tracked, a lower bound that is exact for
// every repository that was never displaced. It is safe for concurrent use; a
// nil *TopRepos counts nothing.
type TopRepos struct {
	mu        sync.Mutex
	now       func() time.Time
	hour, day ringCounts
}

// RepoPulls is one repository's pulls in a window.
type RepoPulls struct {
	Repo string
	// Pulls are the pulls counted while the repository was tracked: exact
	// when Over is 0, else a lower bound.
	Pulls int64
	// Over is how many more it may have had while it was not tracked (in a
	// bucket full of names that were pulled as often).
	Over int64
}

// NewTopRepos returns a counter whose buckets track at most capacity names
// each (DefaultTopReposCapacity when capacity <= 0); now is the clock (nil:
// time.Now).
func NewTopRepos(capacity int, now func() time.Time) *TopRepos {
	if capacity <= 0 {
		capacity = DefaultTopReposCapacity
	}
	if now == nil {
		now = time.Now
	}
	return &TopRepos{now: now,
		hour: newRingCounts(hourBucket, hourBuckets, capacity),
		day:  newRingCounts(dayBucket, dayBuckets, capacity)}
}

// Pull counts one pull of repo.
func (t *TopRepos) Pull(repo string) {
	if t == nil || repo == "" {
		return
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.hour.add(repo, now)
	t.day.add(repo, now)
}

// Top returns the n most pulled repositories of the last window, most pulled
// first (ties by name). A window up to an hour is read from the 5-minute
// buckets, a longer one (up to a day) from the hourly ones.
func (t *TopRepos) Top(window time.Duration, n int) []RepoPulls {
	if t == nil || n <= 0 {
		return nil
	}
	now := t.now()
	t.mu.Lock()
	r := &t.day
	if window <= time.Hour {
		r = &t.hour
	}
	sums := r.sum(now.Add(-window))
	t.mu.Unlock()
	out := make([]RepoPulls, 0, len(sums))
	for repo, c := range sums {
		out = append(out, RepoPulls{Repo: repo, Pulls: c.n - c.over, Over: c.over})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pulls != out[j].Pulls {
			return out[i].Pulls > out[j].Pulls
		}
		return out[i].Repo < out[j].Repo
	})
	return out[:min(n, len(out))]
}

// ringCounts is a ring of time buckets of one span.
type ringCounts struct {
	span     time.Duration
	capacity int
	buckets  []bucket
}

// bucket counts the pulls of one span of time; start is zero while unused.
type bucket struct {
	start  time.Time
	counts map[string]*count
}

type count struct{ n, over int64 }

func newRingCounts(span time.Duration, n, capacity int) ringCounts {
	return ringCounts{span: span, capacity: capacity, buckets: make([]bucket, n)}
}

// add counts repo in the bucket of now, starting that bucket afresh when it
// last held an older span.
func (r *ringCounts) add(repo string, now time.Time) {
	start := now.Truncate(r.span)
	b := &r.buckets[int(start.UnixNano()/int64(r.span))%len(r.buckets)]
	if !b.start.Equal(start) {
		b.start, b.counts = start, make(map[string]*count, 16)
	}
	if c, ok := b.counts[repo]; ok {
		c.n++
		return
	}
	if len(b.counts) < r.capacity {
		b.counts[repo] = &count{n: 1}
		return
	}
	minRepo, minCount := leastCounted(b.counts)
	delete(b.counts, minRepo)
	b.counts[repo] = &count{n: minCount.n + 1, over: minCount.n}
}

// leastCounted is the entry with the smallest count (ties: any).
func leastCounted(m map[string]*count) (string, *count) {
	var repo string
	var least *count
	for k, c := range m {
		if least == nil || c.n < least.n {
			repo, least = k, c
		}
	}
	return repo, least
}

// sum adds up the buckets that started at or after since.
func (r *ringCounts) sum(since time.Time) map[string]count {
	out := map[string]count{}
	for _, b := range r.buckets {
		if b.start.IsZero() || b.start.Before(since) {
			continue
		}
		for repo, c := range b.counts {
			s := out[repo]
			s.n += c.n
			s.over += c.over
			out[repo] = s
		}
	}
	return out
}
