package storage

import (
	"context"
	"path"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// Item is one stored thing the scheduler tracks, found by Walk.
type Item struct {
	Kind    ItemKind
	Repo    string
	Digest  digest.Digest // a tag's: the manifest it points at
	Tag     string
	Size    int64 // of the content, for manifests and blobs
	ModTime time.Time
}

// ItemKind says what an Item is.
type ItemKind int

const (
	ItemTag ItemKind = iota + 1
	ItemManifest
	ItemBlob
)

// Walk reports every tag, manifest revision and layer link of every repository
// (one with a manifest, or with layer links alone) whose content is present, so
// that the scheduler's index can be reconciled with the disk at start. Links to
// missing content are skipped.
func (s *Store) Walk(ctx context.Context, fn func(Item)) error {
	repos, err := s.linkedRepositories(ctx)
	if err != nil {
		return err
	}
	for _, repo := range repos {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.walkLinks(ctx, repo, "_layers", ItemBlob, fn)
		s.walkLinks(ctx, repo, "_manifests/revisions", ItemManifest, fn)
		s.walkTags(ctx, repo, fn)
	}
	return nil
}

// walkLinks reports the links under repo/<dir>/<alg>/<hex>/link. A directory
// without its link file is no link: a deletion killed between removing the
// file and its directory leaves one, and the store's reads (HasLayer,
// GetManifest) look for the file.
func (s *Store) walkLinks(ctx context.Context, repo, dir string, kind ItemKind, fn func(Item)) {
	algs, _ := s.d.List(ctx, path.Join(repoPath(repo), dir))
	for _, alg := range algs {
		hexes, _ := s.d.List(ctx, alg)
		for _, h := range hexes {
			d := digest.NewDigestFromEncoded(digest.Algorithm(path.Base(alg)), path.Base(h))
			if d.Validate() != nil {
				continue
			}
			li, err := s.d.Stat(ctx, path.Join(h, "link"))
			if err != nil {
				continue
			}
			fi, err := s.d.Stat(ctx, blobDataPath(d))
			if err != nil {
				continue
			}
			fn(Item{Kind: kind, Repo: repo, Digest: d, Size: fi.Size(), ModTime: li.ModTime()})
		}
	}
}

func (s *Store) walkTags(ctx context.Context, repo string, fn func(Item)) {
	tags, _ := s.Tags(ctx, repo)
	for _, tag := range tags {
		d, err := s.ResolveTag(ctx, repo, tag)
		if err != nil {
			continue
		}
		fi, err := s.d.Stat(ctx, tagCurrentPath(repo, tag))
		if err != nil || strings.Contains(tag, "/") {
			continue
		}
		fn(Item{Kind: ItemTag, Repo: repo, Digest: d, Tag: tag, ModTime: fi.ModTime()})
	}
}

// BlobInfoAt is one blob found by Blobs. Size and ModTime are zero when its
// directory has no data (a deletion or commit cut short).
type BlobInfoAt struct {
	Digest  digest.Digest
	Size    int64
	ModTime time.Time
}

// Blobs reports every blob whose directory is in the store (layers, configs
// and manifests alike), linked in a repository or not: with Walk's links, what
// finds content no link reaches any more (an eviction killed between
// unlinking and deleting, a fill killed between commit and link), and what
// hosted gc sweeps.
func (s *Store) Blobs(ctx context.Context, fn func(BlobInfoAt)) error {
	algs, err := s.d.List(ctx, path.Join(v2Root, "blobs"))
	if err != nil {
		if err = mapErr(err); err == ErrNotFound {
			return nil
		}
		return err
	}
	for _, alg := range algs {
		prefixes, _ := s.d.List(ctx, alg)
		for _, prefix := range prefixes {
			if err := ctx.Err(); err != nil {
				return err
			}
			hexes, _ := s.d.List(ctx, prefix)
			for _, h := range hexes {
				d := digest.NewDigestFromEncoded(digest.Algorithm(path.Base(alg)), path.Base(h))
				if d.Validate() != nil {
					continue
				}
				b := BlobInfoAt{Digest: d}
				if fi, err := s.d.Stat(ctx, path.Join(h, "data")); err == nil {
					b.Size, b.ModTime = fi.Size(), fi.ModTime()
				}
				fn(b)
			}
		}
	}
	return nil
}

// Layers lists the blobs linked in repo's _layers.
func (s *Store) Layers(ctx context.Context, repo string) []digest.Digest {
	var out []digest.Digest
	s.walkLinks(ctx, repo, "_layers", ItemBlob, func(it Item) { out = append(out, it.Digest) })
	return out
}
