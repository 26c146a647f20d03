package scheduler

import (
	"errors"
	"time"
)

// Changes from other replicas are merged into the index as they come: an
// entry this replica lacks is added (another replica stored it), a later
// access moves an entry (another replica served it), and a removal drops an
// entry unless this replica knows of a later access. Merged changes are
// written to the index file like local ones, and never published again.

// apply merges other replicas' changes and returns how many changed the
// index. It wakes the evictor as Record does: for a new oldest entry of a
// lane, or when the size cap is exceeded.
func (ix *Index) apply(cs []Change) int {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	n, wake := 0, false
	for _, c := range cs {
		x, changed := ix.applyOne(c, false)
		if changed {
			n++
			wake = wake || (x != nil && x.prev == &x.lane.list.root)
		}
	}
	if wake || (n > 0 && ix.limit > 0 && ix.total > ix.limit) {
		ix.signal()
	}
	return n
}

// applyOne merges c; ix.mu is held. It returns the entry c added or moved
// (nil for a removal) and whether the index changed. With bulk, entries are
// not placed in their lane's list (a new one) or moved in it: the caller
// relinks all lanes after many, which costs O(n log n) instead of a search
// per entry.
func (ix *Index) applyOne(c Change, bulk bool) (*entry, bool) {
	if err := c.check(); err != nil {
		ix.log.WithError(err).WithField("entry", c.Key.String()).Warn("scheduler: ignoring an invalid change from another replica")
		return nil, false
	}
	access := c.LastAccess.UnixNano()
	x, ok := ix.entries[c.id()]
	switch {
	case c.Removed:
		if !ok || x.access > access {
			return nil, false
		}
		ix.forget(x)
		return nil, true
	case !ok:
		x = &entry{id: c.id(), target: c.Digest, size: c.Size, access: access}
		ix.add(x)
		if !bulk {
			x.lane.list.insert(x)
		}
		ix.markDirty(x)
		return x, true
	case access <= x.access:
		return nil, false
	}
	ix.update(x, c.Digest, c.Size)
	if bulk {
		x.access = access
	} else {
		x.lane.list.moveTo(x, access)
	}
	ix.markDirty(x)
	return x, true
}

// check reports a change the index cannot merge, and zeroes a tag's size.
func (c *Change) check() error {
	if err := c.validate(); err != nil {
		return err
	}
	if c.LastAccess.Before(time.Unix(0, 0)) {
		return errors.New("no access time")
	}
	if c.Size < 0 {
		return errors.New("negative size")
	}
	if c.Kind == KindTag {
		c.Size = 0
	}
	return nil
}

// mergeSnapshot merges the shared state (the latest change of every entry
// the cluster has) and queues for publishing what this replica knows better:
// later accesses, and entries the state lacks. With authoritative, an entry
// the state lacks and that is not waiting in the outbox is dropped instead:
// the state is complete (same generation) and another replica removed it
// while this one was not reading the log. It returns how many entries the
// state changed, how many were queued and how many dropped.
func (ix *Index) mergeSnapshot(state []Change, authoritative bool) (applied, queued, dropped int) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	seen := make(map[id]int64, len(state))
	for _, c := range state {
		c.Removed = false
		if _, changed := ix.applyOne(c, true); changed {
			applied++
		}
		seen[c.id()] = c.LastAccess.UnixNano()
	}
	for i, x := range ix.entries {
		a, ok := seen[i]
		switch {
		case ok && x.access <= a:
		case !ok && authoritative && !x.queued:
			ix.forget(x)
			dropped++
		default:
			ix.share(x)
			queued++
		}
	}
	ix.relink() // bulk merges left the lists out of order
	ix.signal()
	return applied, queued, dropped
}
