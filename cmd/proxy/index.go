package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/hosted"
	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
)

// openIndex opens the scheduler's index in the local state directory
// (<root>/_proxy on the filesystem, proxy.statedirectory with an object store). It also takes
// the storage's lock, so it must come before anything else touches the storage.
func openIndex(cfg *config.Config, log *logrus.Entry) (*scheduler.Index, error) {
	path := filepath.Join(cfg.StateDir(), "scheduler.db")
	ix, err := scheduler.Open(path, append(ttlOptions(cfg), scheduler.WithLogger(log))...)
	if err != nil {
		return nil, fmt.Errorf("storage %s (index %s): %w", cfg.Storage.Describe(), path, err)
	}
	return ix, nil
}

// openStore opens the cache's content store: the filesystem root, or the
// object store (s3, gcs, azure) with fills spooled in <statedirectory>/spool.
func openStore(ctx context.Context, cfg *config.Config) (*storage.Store, error) {
	if name := cfg.Storage.Driver(); cfg.Storage.ObjectStore() {
		store, err := storage.NewObjectStore(ctx, name, cfg.Storage.Params(), filepath.Join(cfg.StateDir(), "spool"))
		if err != nil {
			return nil, fmt.Errorf("storage.%s: %w", name, err)
		}
		return store, nil
	}
	return storage.NewFilesystem(cfg.Storage.Filesystem.RootDirectory)
}

// hostedBackend is where hosted repositories live: hosted.rootdirectory (or
// <root>/hosted) on the filesystem, the prefix HostedObjectRoot in the bucket
// of an object store.
func hostedBackend(cfg *config.Config) hosted.Backend {
	if cfg.Storage.ObjectStore() {
		return hosted.Backend{Driver: cfg.Storage.Driver(), Params: cfg.Storage.DriverParams(cfg.HostedObjectRoot()),
			Redirect: !cfg.Storage.Redirect.Disable}
	}
	return hosted.Backend{Dir: cfg.Hosted.Root(cfg.Storage.Filesystem.RootDirectory), Redirect: !cfg.Storage.Redirect.Disable}
}

// mirrorDBPath is the mirroring engine's database: in the hosted root on the
// filesystem, in the state directory with an object store (bbolt needs a
// local file).
func mirrorDBPath(cfg *config.Config) string {
	if cfg.Storage.ObjectStore() {
		return filepath.Join(cfg.StateDir(), "mirror.db")
	}
	return filepath.Join(cfg.Hosted.Root(cfg.Storage.Filesystem.RootDirectory), "mirror.db")
}

// ttlOptions give the index the TTL of every upstream: proxy.ttl for the
// default upstream, upstreams[].ttl for the repositories a further upstream's
// cache stores under its host (cache.WithNamespace).
func ttlOptions(cfg *config.Config) []scheduler.Option {
	opts := []scheduler.Option{scheduler.WithTTL(cfg.Proxy.TTL)}
	for _, u := range cfg.Upstreams {
		opts = append(opts, scheduler.WithRepoTTL(u.Host, u.TTL)) // Load set an unset TTL to proxy.ttl
	}
	return opts
}

// reconcile makes the index match the disk: content without an entry gets one
// (last access: its link's mtime), entries whose content is gone are dropped.
// With sweep, content no link reaches any more is deleted too (see
// sweepUnlinked); callers sweep when storage.delete.enabled allows deleting.
// Nothing may use the store meanwhile.
func reconcile(ctx context.Context, ix *scheduler.Index, store *storage.Store, cfg *config.Config, sweep bool, log *logrus.Entry) error {
	adopted, err := registry2Expiries(ctx, store, ix.TTL)
	if err != nil {
		log.WithError(err).Warn("ignoring registry:2's " + registry2State + ": cannot read it")
	}
	start := time.Now()
	present, linked, err := walkEntries(ctx, store, adopted)
	if err != nil {
		return err
	}
	added, dropped, err := ix.Reconcile(ctx, present)
	if err != nil {
		return fmt.Errorf("reconcile index: %w", err)
	}
	log.WithFields(logrus.Fields{"entries": ix.Len(), "added": added, "dropped": dropped,
		"bytes": ix.TotalSize(), "registry2_expiries": len(adopted)}).Info("cache index reconciled with storage")
	if sweep {
		var spare time.Time
		if cfg.Redis.Enabled() {
			// Other replicas fill meanwhile: content stored lately may be
			// linked after its repository was walked.
			spare = start.Add(-sweepMargin)
		}
		return sweepUnlinked(ctx, store, linked, spare, log)
	}
	return nil
}

// sweepMargin is how old unlinked content must be before a replica of a
// cluster sweeps it at start: another replica's fill commits a blob and links
// it moments later, and the clocks of the replicas and the object store may
// differ by a little.
const sweepMargin = 10 * time.Minute

// walkEntries lists every stored item as an index entry, last accessed at its
// link's mtime unless adopted gives a time, and the digests some item links.
func walkEntries(ctx context.Context, store *storage.Store, adopted map[scheduler.Key]time.Time) ([]scheduler.Entry, map[digest.Digest]bool, error) {
	var present []scheduler.Entry
	linked := map[digest.Digest]bool{}
	err := store.Walk(ctx, func(it storage.Item) {
		k := itemKey(it)
		last := it.ModTime
		if t, ok := adopted[k]; ok {
			last = t
		}
		present = append(present, scheduler.Entry{Key: k, Size: it.Size, LastAccess: last})
		linked[it.Digest] = true
	})
	if err != nil {
		return nil, nil, fmt.Errorf("walk storage: %w", err)
	}
	return present, linked, nil
}

// sweepUnlinked deletes the content that no repository links (linked lists
// what Walk found linked). The index has no entry for it, so no eviction would
// ever free it: it is what a process killed between an eviction's unlinking
// and its deleting, or between a fill's commit and its link, leaves behind. A
// pull would fetch it again.
//
// Content stored after spare (zero: no such limit) is spared: in a cluster,
// it may be another replica's fill, committed but not linked yet when its
// repository was walked.
func sweepUnlinked(ctx context.Context, store *storage.Store, linked map[digest.Digest]bool, spare time.Time, log *logrus.Entry) error {
	var unlinked []digest.Digest
	if err := store.Blobs(ctx, func(b storage.BlobInfoAt) {
		if !linked[b.Digest] && (spare.IsZero() || b.ModTime.Before(spare)) {
			unlinked = append(unlinked, b.Digest)
		}
	}); err != nil {
		return fmt.Errorf("list blobs: %w", err)
	}
	var freed int64
	for _, d := range unlinked {
		if info, err := store.StatBlob(ctx, d); err == nil {
			freed += info.Size
		}
		if err := store.DeleteBlob(ctx, d); err != nil {
			return fmt.Errorf("delete unlinked content: %w", err)
		}
	}
	if len(unlinked) > 0 {
		log.WithFields(logrus.Fields{"blobs": len(unlinked), "bytes": freed}).
			Info("deleted content no repository links (left by an interrupted eviction or fill)")
	}
	return nil
}

// itemKey is the index key of a stored item.
func itemKey(it storage.Item) scheduler.Key {
	kinds := map[storage.ItemKind]scheduler.Kind{
		storage.ItemTag: scheduler.KindTag, storage.ItemManifest: scheduler.KindManifest, storage.ItemBlob: scheduler.KindBlob,
	}
	return scheduler.Key{Kind: kinds[it.Kind], Repo: it.Repo, Digest: it.Digest, Tag: it.Tag}
}
