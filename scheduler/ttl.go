package scheduler

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// A TTL applies to a repository: the default one (WithTTL), or the one of the
// longest repository prefix given with WithRepoTTL. The proxy stores each
// further upstream's repositories under its registry host ("ghcr.io/owner/app"),
// so a prefix per upstream gives each upstream its own TTL while the index
// knows nothing of upstreams.
//
// Entries with the same TTL share a lane: one LRU list, in which access order is
// expiry order. Expiry looks at the front of each lane; the size cap, which
// evicts least recently used first whatever the TTL, merges the lanes by
// access. There are as many lanes as distinct TTLs in use, a handful.

// lane is the entries that live ttl after their last access.
type lane struct {
	ttl  time.Duration // zero: its entries never expire
	list lru
}

// repoTTL is one WithRepoTTL rule.
type repoTTL struct {
	prefix string
	ttl    time.Duration
}

// WithRepoTTL makes the entries of the repository prefix and of every
// repository below it ("ghcr.io" covers "ghcr.io/owner/app", not
// "ghcr.io.example/app") live ttl after their last access instead of the
// default TTL of WithTTL. The longest matching prefix wins; zero or less means
// never expire. Like the default, it is not stored in the index file: a
// changed TTL applies to every entry at the next Open.
func WithRepoTTL(prefix string, ttl time.Duration) Option {
	return func(ix *Index) {
		prefix = strings.Trim(prefix, "/")
		if prefix == "" {
			ix.ttl = max(ttl, 0)
			return
		}
		ix.rules = slices.DeleteFunc(ix.rules, func(r repoTTL) bool { return r.prefix == prefix })
		ix.rules = append(ix.rules, repoTTL{prefix, max(ttl, 0)})
		slices.SortStableFunc(ix.rules, func(a, b repoTTL) int { return cmp.Compare(len(b.prefix), len(a.prefix)) })
	}
}

// TTL returns how long the entries of repo live after their last access; zero
// means they never expire.
func (ix *Index) TTL(repo string) time.Duration {
	for _, r := range ix.rules { // longest prefix first
		if repo == r.prefix || (strings.HasPrefix(repo, r.prefix) && repo[len(r.prefix)] == '/') {
			return r.ttl
		}
	}
	return ix.ttl
}

// laneFor returns the lane of repo's entries, creating it; ix.mu is held or
// the index is not shared yet.
func (ix *Index) laneFor(repo string) *lane {
	ttl := ix.TTL(repo)
	for _, l := range ix.lanes {
		if l.ttl == ttl {
			return l
		}
	}
	l := &lane{ttl: ttl}
	l.list.init()
	ix.lanes = append(ix.lanes, l)
	return l
}

// expiry returns when x expires, false if never; ix.mu is held.
func (x *entry) expiry() (time.Time, bool) {
	if x.lane.ttl <= 0 {
		return time.Time{}, false
	}
	return time.Unix(0, x.access).Add(x.lane.ttl), true
}

// nextExpiry is NextExpiry over the entries keep does not report (nil: all). In
// each lane it passes over kept entries at the front, expired ones included.
func (ix *Index) nextExpiry(keep func(Key) bool) (next time.Time, ok bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, l := range ix.lanes {
		if l.ttl <= 0 {
			continue
		}
		for x := l.list.front(); x != nil; x = l.list.after(x) {
			if keep == nil || !keep(x.key()) {
				if t, _ := x.expiry(); !ok || t.Before(next) {
					next, ok = t, true
				}
				break
			}
		}
	}
	return next, ok
}

// expired returns the entries expired at now, least recently used first;
// ix.mu is held.
func (ix *Index) expired(now time.Time) []*entry {
	var out []*entry
	for _, l := range ix.lanes {
		if l.ttl <= 0 {
			continue
		}
		cutoff := now.Add(-l.ttl).UnixNano()
		for x := l.list.front(); x != nil && x.access <= cutoff; x = l.list.after(x) {
			out = append(out, x)
		}
	}
	if len(ix.lanes) > 1 {
		slices.SortStableFunc(out, func(a, b *entry) int { return cmp.Compare(a.access, b.access) })
	}
	return out
}

// byAccess calls fn with every entry, least recently used first across all
// lanes, until fn returns false; ix.mu is held.
func (ix *Index) byAccess(fn func(*entry) bool) {
	heads := make([]*entry, len(ix.lanes))
	for i, l := range ix.lanes {
		heads[i] = l.list.front()
	}
	for {
		best := -1
		for i, x := range heads {
			if x != nil && (best < 0 || x.access < heads[best].access) {
				best = i
			}
		}
		if best < 0 || !fn(heads[best]) {
			return
		}
		heads[best] = ix.lanes[best].list.after(heads[best])
	}
}
