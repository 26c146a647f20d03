package storage

import (
	"context"
	"fmt"
	"path"

	"github.com/opencontainers/go-digest"
)

// Deleting is the scheduler's business (eviction); a missing item is no error,
// so a pass interrupted half way can simply run again.

// DeleteTag removes repo:tag (its current link and index).
func (s *Store) DeleteTag(ctx context.Context, repo, tag string) error {
	return s.remove(ctx, path.Join(tagsPath(repo), tag), "tag "+repo+":"+tag)
}

// DeleteManifest removes the manifest revision dgst from repo; its content is a
// blob and goes with DeleteBlob.
func (s *Store) DeleteManifest(ctx context.Context, repo string, dgst digest.Digest) error {
	return s.remove(ctx, path.Dir(revisionLinkPath(repo, dgst)), "manifest "+repo+"@"+dgst.String())
}

// UnlinkLayer removes repo's link to the blob dgst.
func (s *Store) UnlinkLayer(ctx context.Context, repo string, dgst digest.Digest) error {
	return s.remove(ctx, path.Dir(layerLinkPath(repo, dgst)), "layer link "+repo+"@"+dgst.String())
}

// DeleteBlob removes the content dgst. Readers that have it open keep reading.
func (s *Store) DeleteBlob(ctx context.Context, dgst digest.Digest) error {
	return s.remove(ctx, path.Dir(blobDataPath(dgst)), "blob "+dgst.String())
}

func (s *Store) remove(ctx context.Context, p, what string) error {
	if err := mapErr(s.d.Delete(ctx, p)); err != nil && err != ErrNotFound {
		return fmt.Errorf("delete %s: %w", what, err)
	}
	return nil
}
