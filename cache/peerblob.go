package cache

import (
	"context"

	"github.com/opencontainers/go-digest"
)

// PeerBlob opens dgst for another replica of the cluster that waits for this
// replica's fill of it: the fill in progress (read like a client reads it,
// the last bytes held back until the digest matched), else the stored blob.
// It never starts a fill and never asks the upstream: storage.ErrNotFound
// when there is neither. The caller must Close the Blob.
func (c *Cache) PeerBlob(ctx context.Context, dgst digest.Digest) (*Blob, error) {
	c.mu.Lock()
	f, ok := c.fills[dgst]
	if ok {
		f.acquire()
	}
	c.mu.Unlock()
	if ok {
		return c.awaitFill(ctx, f)
	}
	rc, info, err := c.store.OpenBlob(ctx, dgst)
	if err != nil {
		return nil, err
	}
	return &Blob{Digest: dgst, Source: Hit, size: info.Size, local: rc}, nil
}
