package cache

import (
	"context"

	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
)

// WithIndex records every stored item and every access in the scheduler's index,
// which evicts what nobody pulled for a while.
func WithIndex(ix *scheduler.Index) Option { return func(c *Cache) { c.index = ix } }

// record notes a newly stored item; touch notes an access. Both are cheap: the
// index batches its writes.
func (c *Cache) record(kind scheduler.Kind, repo string, dgst digest.Digest, tag string, size int64) {
	if c.index != nil {
		c.index.Record(scheduler.Entry{Key: scheduler.Key{Kind: kind, Repo: repo, Digest: dgst, Tag: tag}, Size: size})
	}
}

func (c *Cache) touch(kind scheduler.Kind, repo string, dgst digest.Digest, tag string) {
	if c.index != nil {
		c.index.Touch(scheduler.Key{Kind: kind, Repo: repo, Digest: dgst, Tag: tag})
	}
}

// keepTag points tag at m in the store, if m is stored. A failure is logged,
// not returned: the client has its verified manifest, and the tag is written
// again at the next revalidation that finds it out of date.
func (c *Cache) keepTag(ctx context.Context, repo repository, tag string, m *Manifest) {
	if m.unstored {
		return
	}
	if err := c.store.Tag(ctx, repo.local, tag, m.Digest); err != nil {
		c.log.WithError(err).WithField("repo", repo.local).WithField("tag", tag).WithField("digest", m.Digest).
			Warn("tag not updated in the store; the manifest was served")
		return
	}
	c.record(scheduler.KindTag, repo.local, m.Digest, tag, 0)
}

// linkLayer links the blob dgst into repo in the store and the index.
func (c *Cache) linkLayer(ctx context.Context, repo repository, dgst digest.Digest, size int64) error {
	if err := c.store.LinkLayer(ctx, repo.local, dgst); err != nil {
		return err
	}
	c.record(scheduler.KindBlob, repo.local, dgst, "", size)
	return nil
}

// Deleter carries out the scheduler's evictions on the store. A blob is in
// use, and stays, while a fill of any of the caches writes it or a client of
// theirs reads it (InUse, in inuse.go), and in a cluster while another
// replica fills or serves it.
type Deleter struct {
	Store  *storage.Store
	Caches []*Cache
	// Cluster, if set, tells which blobs the other replicas use
	// (cluster.Serving). When it cannot tell (Redis unreachable), only this
	// replica's fills and readers count: the evictor is alone then.
	Cluster ClusterUse
}

var _ scheduler.Deleter = Deleter{}

func (d Deleter) DeleteTag(ctx context.Context, repo, tag string) error {
	return d.Store.DeleteTag(ctx, repo, tag)
}

func (d Deleter) DeleteManifest(ctx context.Context, repo string, dgst digest.Digest) error {
	return d.Store.DeleteManifest(ctx, repo, dgst)
}

func (d Deleter) UnlinkBlob(ctx context.Context, repo string, dgst digest.Digest) error {
	return d.Store.UnlinkLayer(ctx, repo, dgst)
}

func (d Deleter) DeleteBlob(ctx context.Context, dgst digest.Digest) error {
	return d.Store.DeleteBlob(ctx, dgst)
}
