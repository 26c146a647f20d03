package scheduler

import (
	"cmp"
	"slices"

	"github.com/opencontainers/go-digest"
)

// entry is an index entry in memory. Its fields are guarded by Index.mu.
type entry struct {
	id     id
	target digest.Digest // the content: a blob's or manifest's digest, a tag's manifest
	size   int64
	access int64 // last access, Unix nanoseconds
	lane   *lane // the entries of its TTL; set by Index.add

	dirty  bool // changed since the last flush, queued in Index.dirty
	gone   bool // removed from the index; a queued flush skips it
	queued bool // changed here since the last publish, queued in Index.outbox

	prev, next *entry // neighbours in the lru list
}

func (e *entry) record() record {
	return record{id: e.id, target: e.target, size: e.size, access: e.access}
}

// lru lists entries by last access, oldest first. Each lane (ttl.go) has one,
// and all entries of a lane share one TTL, so this is expiry order too: the
// expired entries of a lane are a prefix of its list. The size cap evicts from
// the same end, merging the lanes. A touch moves an entry to the back in
// constant time, which is why this is a list and not a heap.
type lru struct {
	root entry // sentinel: root.next is the oldest entry, root.prev the newest
}

func (l *lru) init() {
	l.root.next, l.root.prev = &l.root, &l.root
}

// front returns the oldest entry, nil if the list is empty.
func (l *lru) front() *entry { return l.after(&l.root) }

// after returns the entry after e, nil at the end.
func (l *lru) after(e *entry) *entry {
	if e.next == &l.root {
		return nil
	}
	return e.next
}

func (l *lru) remove(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

// insert places e by its access time, searching from the newest end: an access
// "now" lands at the back in one step.
func (l *lru) insert(e *entry) {
	at := l.root.prev
	for at != &l.root && at.access > e.access {
		at = at.prev
	}
	e.prev, e.next = at, at.next
	at.next.prev = e
	at.next = e
}

// moveTo updates e's access time and its place in the list.
func (l *lru) moveTo(e *entry, access int64) {
	e.access = access
	if e.next == &l.root || e.next.access >= access {
		if e.prev == &l.root || e.prev.access <= access {
			return // already in place, as the newest entry usually is
		}
	}
	l.remove(e)
	l.insert(e)
}

// rebuild relinks all entries in order; cheaper than inserting many entries with
// old access times one by one.
func (l *lru) rebuild(all []*entry) {
	slices.SortStableFunc(all, func(a, b *entry) int { return cmp.Compare(a.access, b.access) })
	l.init()
	for _, e := range all {
		e.prev, e.next = l.root.prev, &l.root
		l.root.prev.next = e
		l.root.prev = e
	}
}
