package cache

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// peerRetryPause is how long a fill whose peer stream broke waits before it
// asks the cluster again: the lease of a dead holder is not free at once.
const peerRetryPause = 250 * time.Millisecond

// runFill fills the spool from the upstream, the store or a peer, verifies
// it and keeps it. It runs on the cache's context, not a client's: a client
// that leaves does not stop it. Clients get the last byte as soon as the
// digest matched; the commit (a sync and a rename or an upload) follows, so
// its cost is not theirs to wait for.
func (c *Cache) runFill(f *fill) {
	defer c.running.Done()
	defer f.release()
	cl, err := c.spool(f)
	f.finish(err)
	if err == nil {
		err = c.keep(f, cl)
	}
	if cl.from != fromUpstream || err != nil {
		// A private copy (the blob is, or will be, stored by another
		// replica), or a failed fill.
		c.store.DiscardSpool(f.file)
	}
	if err != nil {
		c.log.WithError(err).WithField("digest", f.dgst).WithField("repo", f.repo.local).
			Warn("blob fill failed; nothing stored")
	}
	cl.release() // after the commit: waiting replicas find the blob stored
	f.storeErr = err
	c.mu.Lock()
	delete(c.fills, f.dgst)
	c.mu.Unlock()
	close(f.stored) // last: whoever waited for the commit finds the fill gone
}

// spool fills f's spool from the sources claimFill picks. When a peer stream
// breaks (its replica died or cut it), it asks again and goes on after the
// bytes spooled: from the next holder, from the store once the blob is
// committed, or from the upstream once this replica took the lease over. A
// digest or size mismatch is final. It returns the claim of the source that
// ended the fill.
func (c *Cache) spool(f *fill) (claim, error) {
	tries := 0
	for {
		cl := c.claimFill(f, &tries)
		var err error
		switch cl.from {
		case fromPeer:
			err = c.copyPeer(f, cl.peer)
		case fromStore:
			err = c.copyStored(f)
		default:
			err = c.fetchInto(f)
			c.metrics.Fill(c.up.Host(), f.written, err)
		}
		if cl.from != fromPeer || err == nil || !errors.Is(err, errCut) {
			return cl, err
		}
		select {
		case <-time.After(peerRetryPause):
		case <-c.ctx.Done():
			return cl, fmt.Errorf("blob %s: %w", f.dgst, c.ctx.Err())
		}
	}
}

// keep stores a verified fill: this replica commits what it fetched
// upstream; what it streamed from a peer the holder commits, so it only
// waits for that; what it copied from the store is there already. The blob
// is then linked into the fill's repository.
func (c *Cache) keep(f *fill, cl claim) error {
	switch cl.from {
	case fromUpstream:
		if err := c.store.CommitBlob(c.ctx, f.file, f.dgst); err != nil {
			return err
		}
	case fromPeer:
		if err := c.awaitCommit(f); err != nil {
			return err
		}
	}
	return c.linkLayer(c.ctx, f.repo, f.dgst, f.written)
}

// awaitCommit waits (at most the cluster wait) until the lease holder whose
// fill f streamed released the lease, and checks that it committed the blob.
func (c *Cache) awaitCommit(f *fill) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.clusterWait)
	defer cancel()
	werr := c.coord.WaitReleased(ctx, fillLease(f.dgst))
	if _, err := c.store.StatBlob(c.ctx, f.dgst); err != nil {
		return fmt.Errorf("blob %s: streamed from a peer, which did not commit it (wait: %v): %w", f.dgst, werr, err)
	}
	return nil
}

// fetchInto fills f from the upstream.
func (c *Cache) fetchInto(f *fill) error {
	body, size, err := c.up.GetBlob(c.ctx, f.repo.up, f.dgst)
	if err != nil {
		return err
	}
	defer body.Close()
	if err := f.begin(size); err != nil {
		return err
	}
	return f.copyFrom(body, size)
}
