package cache

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"
)

// Fetch makes sure the blob dgst of the repository name (as a client names it)
// is in local storage, as a pull would leave it, without handing its bytes to
// anyone: `proxy warm` fills the cache ahead of use with it. It takes the path
// of Blob: a stored blob is a hit (touched in the index; linked into this
// repository once the upstream confirms it has it there), anything else is
// fetched upstream, joining a fill in progress. A miss returns only when the
// blob was verified, committed and linked, or with the reason it was not.
// It returns the blob's size and where it came from.
func (c *Cache) Fetch(ctx context.Context, name string, dgst digest.Digest) (int64, Source, error) {
	b, err := c.Blob(ctx, name, dgst)
	if err != nil {
		return -1, "", err
	}
	defer b.Close()
	if b.fill == nil {
		return b.size, b.Source, nil
	}
	f := b.fill
	select {
	case <-f.stored:
	case <-ctx.Done():
		return -1, Miss, fmt.Errorf("blob %s: %w", dgst, ctx.Err())
	}
	if f.storeErr != nil {
		return -1, Miss, f.storeErr
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.written, Miss, nil
}
