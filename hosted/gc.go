package hosted

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/storage"
)

// GCReport is what a collection of the hosted root found and freed.
type GCReport struct {
	Manifests int   // manifests kept (each marks what it references)
	Blobs     int   // blobs found
	Swept     int   // blobs unreferenced and old enough: deleted, or would be in a dry run
	Bytes     int64 // their size
	Young     int   // unreferenced blobs spared because they are younger than the grace period
}

// Collect removes hosted blobs that no manifest of any hosted repository
// references (mark and sweep), and the repositories' links to them. Blobs
// younger than grace are spared: a push in progress uploads its blobs before
// the manifest that references them. Manifests themselves, tagged or not, are
// kept (referrers such as signatures are untagged). With dryRun nothing is
// deleted. dir is the hosted root; it must not be served by a running
// process unless grace outlasts any push.
func Collect(ctx context.Context, dir string, grace time.Duration, dryRun bool, now time.Time) (GCReport, error) {
	return CollectOn(ctx, Backend{Dir: dir}, grace, dryRun, now)
}

// CollectOn is Collect on any backend: a local directory or an object store prefix.
func CollectOn(ctx context.Context, b Backend, grace time.Duration, dryRun bool, now time.Time) (GCReport, error) {
	var rep GCReport
	store, err := b.store(ctx)
	if err != nil {
		return rep, fmt.Errorf("hosted root: %w", err)
	}
	repos, err := store.Repositories(ctx)
	if err != nil {
		return rep, fmt.Errorf("list hosted repositories: %w", err)
	}
	marked, err := mark(ctx, store, repos, &rep)
	if err != nil {
		return rep, err
	}
	var sweep []digest.Digest
	err = store.Blobs(ctx, func(b storage.BlobInfoAt) {
		rep.Blobs++
		switch {
		case marked[b.Digest]:
		case now.Sub(b.ModTime) < grace:
			rep.Young++
		default:
			sweep = append(sweep, b.Digest)
			rep.Swept++
			rep.Bytes += b.Size
		}
	})
	if err != nil || dryRun {
		return rep, err
	}
	return rep, unlinkAndDelete(ctx, store, repos, sweep)
}

// mark collects every digest a manifest of repos references: the manifests
// themselves, their configs, layers and child manifests.
func mark(ctx context.Context, store *storage.Store, repos []string, rep *GCReport) (map[digest.Digest]bool, error) {
	marked := map[digest.Digest]bool{}
	for _, repo := range repos {
		dgsts, err := store.Manifests(ctx, repo)
		if err != nil && err != storage.ErrNotFound {
			return nil, fmt.Errorf("list manifests of %s: %w", repo, err)
		}
		for _, d := range dgsts {
			body, err := store.GetManifest(ctx, repo, d)
			if err != nil {
				return nil, fmt.Errorf("read manifest %s@%s: %w", repo, d, err) // never sweep on a partial mark
			}
			rep.Manifests++
			marked[d] = true
			for _, ref := range references(body) {
				marked[ref] = true
			}
		}
	}
	return marked, nil
}

// references lists the digests a manifest or index body points at.
func references(body []byte) []digest.Digest {
	type desc struct {
		Digest digest.Digest `json:"digest"`
	}
	var m struct {
		Config    *desc  `json:"config"`
		Layers    []desc `json:"layers"`
		Manifests []desc `json:"manifests"`
		FSLayers  []struct {
			BlobSum digest.Digest `json:"blobSum"`
		} `json:"fsLayers"` // schema 1
	}
	if json.Unmarshal(body, &m) != nil {
		return nil
	}
	var out []digest.Digest
	if m.Config != nil {
		out = append(out, m.Config.Digest)
	}
	for _, l := range append(m.Layers, m.Manifests...) {
		out = append(out, l.Digest)
	}
	for _, l := range m.FSLayers {
		out = append(out, l.BlobSum)
	}
	return out
}

func unlinkAndDelete(ctx context.Context, store *storage.Store, repos []string, sweep []digest.Digest) error {
	gone := map[digest.Digest]bool{}
	for _, d := range sweep {
		gone[d] = true
	}
	for _, repo := range repos {
		for _, d := range store.Layers(ctx, repo) {
			if gone[d] {
				if err := store.UnlinkLayer(ctx, repo, d); err != nil {
					return err
				}
			}
		}
	}
	for _, d := range sweep {
		if err := store.DeleteBlob(ctx, d); err != nil {
			return err
		}
	}
	return nil
}
