package scheduler

// The outbox is what this replica changed since its Syncer last published:
// each entry recorded or touched here once (the touches of a flush interval
// coalesce, however many requests there were), and each removal. Changes
// merged from other replicas never enter it, so nothing echoes back.

// startSharing makes the index keep an outbox from now on.
func (ix *Index) startSharing() {
	ix.mu.Lock()
	ix.sharing = true
	ix.mu.Unlock()
}

// share queues x for the next publish; ix.mu is held. It is a flag and an
// append, so Touch stays a map write.
func (ix *Index) share(x *entry) {
	if ix.sharing && !x.queued {
		x.queued = true
		ix.outbox = append(ix.outbox, x)
	}
}

// shareRemoval queues the removal of x, just forgotten; ix.mu is held.
func (ix *Index) shareRemoval(x *entry) {
	if ix.sharing {
		ix.outDels = append(ix.outDels, Change{Entry: ix.entry(x), Removed: true})
	}
}

// takeOutbox returns the queued changes, removals first, and empties the
// outbox. An entry is sent as it is now, with its latest access.
func (ix *Index) takeOutbox() []Change {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	out := make([]Change, 0, len(ix.outDels)+len(ix.outbox))
	out = append(out, ix.outDels...)
	for _, x := range ix.outbox {
		x.queued = false
		if !x.gone {
			out = append(out, Change{Entry: ix.entry(x)})
		}
	}
	ix.outDels = nil
	clear(ix.outbox)
	ix.outbox = ix.outbox[:0]
	return out
}

// requeueOutbox puts back changes a publish did not deliver. An entry still
// present is queued again (to be sent as it will be then); a removal keeps
// its place before the later ones.
func (ix *Index) requeueOutbox(cs []Change) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var dels []Change
	for _, c := range cs {
		if c.Removed {
			dels = append(dels, c)
			continue
		}
		if x, ok := ix.entries[c.id()]; ok {
			ix.share(x)
		}
	}
	ix.outDels = append(dels, ix.outDels...)
}

// Pending returns how many changes wait in the outbox: it grows while the
// shared index cannot be reached and empties when it can again.
func (ix *Index) Pending() int {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return len(ix.outbox) + len(ix.outDels)
}
