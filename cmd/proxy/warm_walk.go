package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ocimirror/proxy/internal/units"
	"github.com/ocimirror/proxy/storage"
)

// warmAccept is the Accept list of warm's manifest requests: every image and
// index type, so that a tag resolves to the index of all platforms.
var warmAccept = []string{
	v1.MediaTypeImageIndex, v1.MediaTypeImageManifest,
	storage.MediaTypeDockerManifestList, storage.MediaTypeDockerManifest,
}

// Bounds of a walk: indexes nested deeper are refused, and one manifest's
// blobs are fetched this many at a time.
const (
	warmMaxDepth     = 4
	warmBlobParallel = 4
)

// warmSource is where warm gets content: the caches in this process, or a
// running proxy's registry API.
type warmSource interface {
	// check refuses a repository name the source cannot serve (no upstream
	// for its host), before anything is fetched.
	check(name string) error
	// manifest fetches a manifest by tag or digest and returns its verified
	// body, its digest and whether it came from the upstream just now.
	manifest(ctx context.Context, name, ref string) (body []byte, dgst digest.Digest, fromUpstream bool, err error)
	// blob makes the blob d present and verified, and says whether it came
	// from the upstream just now.
	blob(ctx context.Context, name string, d v1.Descriptor) (fromUpstream bool, err error)
	// knowsUpstream says whether fromUpstream means anything.
	knowsUpstream() bool
}

// warmer walks images from a source and counts what they hold.
type warmer struct {
	src      warmSource
	progress io.Writer // a line per platform and image; nil: quiet
	start    time.Time

	mu   sync.Mutex
	tot  warmTotals
	seen map[digest.Digest]bool
}

// warmTotals count distinct content: a layer two platforms share counts once.
type warmTotals struct {
	manifests, blobs    int
	bytes, fromUpstream int64
}

func newWarmer(src warmSource, progress io.Writer) *warmer {
	return &warmer{src: src, progress: progress, start: time.Now(), seen: map[digest.Digest]bool{}}
}

// run warms every image in turn and returns the arguments of those that failed,
// each reported on stderr with its error.
func (w *warmer) run(ctx context.Context, images []warmImage, stderr io.Writer) (failed []string) {
	for _, img := range images {
		start := time.Now()
		n, err := w.image(ctx, img)
		if err != nil {
			fmt.Fprintf(stderr, "proxy warm: %s: %v\n", img.arg, err)
			failed = append(failed, img.arg)
			continue
		}
		if w.progress != nil {
			fmt.Fprintf(w.progress, "%s: done, %s in %s\n", img.arg, plural(n, "platform"), time.Since(start).Round(time.Millisecond))
		}
	}
	return failed
}

// image warms img: its manifest and everything below it. It returns how many
// image manifests (platforms) it warmed; it goes on past a platform that fails
// and returns every failure.
func (w *warmer) image(ctx context.Context, img warmImage) (int, error) {
	body, dgst, up, err := w.src.manifest(ctx, img.name, img.ref)
	if err != nil {
		return 0, err
	}
	w.count(dgst, int64(len(body)), up, true)
	return w.walk(ctx, img, body, dgst, "", 0)
}

// platformManifest is what warm reads of any manifest: an index's children, an
// image's config and layers.
type platformManifest struct {
	SchemaVersion int             `json:"schemaVersion"`
	Manifests     []v1.Descriptor `json:"manifests"`
	Config        v1.Descriptor   `json:"config"`
	Layers        []v1.Descriptor `json:"layers"`
}

// walk warms what the manifest body (dgst) references: for an index each child
// manifest and what it references, for an image its config and layers.
func (w *warmer) walk(ctx context.Context, img warmImage, body []byte, dgst digest.Digest, platform string, depth int) (int, error) {
	var m platformManifest
	if err := json.Unmarshal(body, &m); err != nil {
		return 0, fmt.Errorf("manifest %s: %w", dgst, err)
	}
	switch {
	case m.SchemaVersion == 1:
		return 0, fmt.Errorf("manifest %s: schema 1 manifests are not supported", dgst)
	case m.Manifests == nil:
		return 1, w.blobs(ctx, img, dgst, platform, m)
	case depth >= warmMaxDepth:
		return 0, fmt.Errorf("manifest %s: indexes nested more than %d deep", dgst, warmMaxDepth)
	}
	var errs []error
	n := 0
	for _, child := range m.Manifests {
		k, err := w.child(ctx, img, child, depth)
		n += k
		errs = append(errs, err)
	}
	return n, errors.Join(errs...)
}

// child warms one manifest an index lists.
func (w *warmer) child(ctx context.Context, img warmImage, d v1.Descriptor, depth int) (int, error) {
	platform := platformOf(d)
	body, dgst, up, err := w.src.manifest(ctx, img.name, d.Digest.String())
	if err != nil {
		return 0, fmt.Errorf("platform %s (%s): %w", platform, d.Digest, err)
	}
	w.count(dgst, int64(len(body)), up, true)
	n, err := w.walk(ctx, img, body, dgst, platform, depth+1)
	if err != nil {
		return n, fmt.Errorf("platform %s: %w", platform, err)
	}
	return n, nil
}

// platformOf names a child of an index: os/arch[/variant], else its artifact
// type (an attestation), else its digest.
func platformOf(d v1.Descriptor) string {
	if p := d.Platform; p != nil && p.OS != "" {
		return strings.Join(append([]string{p.OS, p.Architecture}, nonEmpty(p.Variant)...), "/")
	}
	if d.ArtifactType != "" {
		return d.ArtifactType
	}
	return d.Digest.String()
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// blobs warms an image manifest's config and layers, a few at a time, and
// prints its line. Layers with URLs (foreign layers) are not in the registry
// and are skipped.
func (w *warmer) blobs(ctx context.Context, img warmImage, dgst digest.Digest, platform string, m platformManifest) error {
	descs := append([]v1.Descriptor{m.Config}, m.Layers...)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(warmBlobParallel)
	var mu sync.Mutex
	var n int
	var bytes, fromUp int64
	for _, d := range descs {
		if d.Digest == "" || len(d.URLs) > 0 {
			continue
		}
		n++
		g.Go(func() error {
			up, err := w.src.blob(gctx, img.name, d)
			if err != nil {
				return fmt.Errorf("blob %s: %w", d.Digest, err)
			}
			w.count(d.Digest, d.Size, up, false)
			mu.Lock()
			defer mu.Unlock()
			bytes += d.Size
			if up {
				fromUp += d.Size
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	w.line(img, dgst, platform, n, bytes, fromUp)
	return nil
}

// line prints one platform's line when progress is on.
func (w *warmer) line(img warmImage, dgst digest.Digest, platform string, blobs int, bytes, fromUp int64) {
	if w.progress == nil {
		return
	}
	if platform == "" {
		platform = "image"
	}
	s := fmt.Sprintf("%s %s %s: %s, %s", img.arg, platform, dgst.Encoded()[:12], plural(blobs, "blob"), units.Bytes(bytes))
	if w.src.knowsUpstream() {
		s += fmt.Sprintf(" (%s from upstream)", units.Bytes(fromUp))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintln(w.progress, s)
}

// plural is "1 blob", "2 blobs".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// count adds content d of size bytes to the totals, once per digest.
func (w *warmer) count(d digest.Digest, size int64, fromUpstream, manifest bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen[d] {
		return
	}
	w.seen[d] = true
	if manifest {
		w.tot.manifests++
	} else {
		w.tot.blobs++
	}
	w.tot.bytes += size
	if fromUpstream {
		w.tot.fromUpstream += size
	}
}

func (w *warmer) totals() warmTotals {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tot
}
