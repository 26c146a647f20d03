package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sirupsen/logrus"
)

// Result is what one copy did.
type Result struct {
	// Digest is the digest the destination now has under the tag (or by
	// digest): the source's, unless a platform filter made a new index.
	Digest v1.Hash
	// Manifests is how many manifests were written, referrers included.
	Manifests int
	// Blobs is how many blobs were uploaded.
	Blobs int
	// Mounted is how many blobs were mounted from another repository of the
	// destination registry instead of uploaded.
	Mounted int
	// Skipped is how many blobs and manifests the destination already had (one
	// HEAD each). A manifest found skips its blobs without asking for them, so a
	// copy of an unchanged image skips 1 (and its referrers) and writes nothing.
	Skipped int
	// Bytes is how many blob bytes were uploaded.
	Bytes int64
	// Referrers is how many referrers (signatures, SBOMs, attestations: OCI
	// referrers and cosign's sha256-<hex>.sig/.att/.sbom tags) were found at the
	// source and are now at the destination.
	Referrers int
	// Tagged is true when the destination tag was written: it named another
	// digest, or nothing. A copy with Tagged false and nothing written found
	// the destination up to date.
	Tagged bool
}

// UpToDate tells whether the copy found everything at the destination already
// and wrote nothing (referrers included).
func (r Result) UpToDate() bool {
	return !r.Tagged && r.Manifests == 0 && r.Blobs == 0 && r.Mounted == 0
}

// Progress is a snapshot of a copy in flight, given to WithProgress's function.
type Progress struct {
	Src, Dst string // the references copied, e.g. registry-1.docker.io/library/alpine:3.20
	Result          // counts so far; Bytes grows as upload bytes are sent
	Done     bool   // the copy ended (successfully or not); this is its last report
}

// ErrNoPlatform is returned (wrapped) by Copy when a platform filter leaves
// nothing to copy: an index without any of the platforms, or an image of another
// platform.
var ErrNoPlatform = errors.New("no manifest for the requested platforms")

// Limits on referrer discovery, against a source that lists referrers without end.
const (
	maxReferrerDepth = 4   // referrers of referrers of ...
	maxReferrers     = 256 // referrers per copy
)

// cosignSuffixes are the tags cosign (without OCI 1.1 mode) stores a
// signature, an attestation and an SBOM of sha256:<hex> under: sha256-<hex>.sig...
var cosignSuffixes = []string{".sig", ".att", ".sbom"}

// Copy copies src's ref (a tag, or a digest "sha256:...") to dst under dstTag, or
// the same tag when dstTag is "", or by digest when ref is a digest and dstTag "".
//
// It copies the manifest or index with every platform, whatever its OS, byte for
// byte, so the destination digests equal the source's; then the referrers of each
// manifest (the OCI referrers API, or the sha256-<hex> tag schema when the source
// has no referrers API, recursively) and cosign's sha256-<hex>.sig/.att/.sbom tags
// of the copied digest. A non-nil platforms filters an index to the children
// whose platform satisfies one of them (linux/arm64 takes linux/arm64/v8 too; an
// attestation manifest follows the manifest it describes): a new index, with a new
// digest, unless every child matched. The referrers of the source index do not
// apply to a new index and are not copied; its children's are.
//
// Blobs the destination has are skipped (one HEAD), blobs in another repository
// of the same registry are mounted, and the rest stream from source to
// destination, verified against their digest, at most WithJobs at a time. The tag
// is written last, after the referrers, so a copy that fails or is cancelled
// (ctx) never leaves a tag naming an incomplete or unsigned image. Errors keep the registry's error (errors.As with
// *transport.Error gives its status and errcode), *RateLimitError or ctx's error.
func (c *Copier) Copy(ctx context.Context, src Endpoint, ref string, dst Endpoint, dstTag string, platforms []v1.Platform) (Result, error) {
	srcRef, err := src.ref(ref)
	if err != nil {
		return Result{}, fmt.Errorf("copy %s: %w", ref, err)
	}
	dstRepo, err := dst.repo()
	if err != nil {
		return Result{}, fmt.Errorf("copy %s: destination: %w", srcRef, err)
	}
	var target name.Reference
	switch {
	case dstTag != "":
		t, err := dst.ref(dstTag)
		if _, isTag := t.(name.Tag); err != nil || !isTag {
			return Result{}, fmt.Errorf("copy %s: destination tag %q is not a tag", srcRef, dstTag)
		}
		target = t
	default:
		if t, ok := srcRef.(name.Tag); ok {
			target = dstRepo.Tag(t.TagStr())
		}
	}

	r, err := c.newRun(ctx, src, dst, target, srcRef.String(), dstRepo.Name())
	if err != nil {
		return Result{}, fmt.Errorf("copy %s: %w", srcRef, err)
	}
	res, err := r.copy(ctx, srcRef, target, platforms)
	r.finish(res.Digest)
	res = r.result(res.Digest)
	if err != nil {
		dstName := dstRepo.Name()
		if target != nil {
			dstName = target.String()
		}
		return res, fmt.Errorf("copy %s to %s: %w", srcRef, dstName, redact(err))
	}
	return res, nil
}

// run is one copy in flight.
type run struct {
	c                *Copier
	src, dst         Endpoint
	srcRepo, dstRepo name.Repository
	puller           *remote.Puller
	pusher           *remote.Pusher
	tally            *tally
	srcClient        *http.Client // for the referrers API; made when first needed
	api              apiState     // whether the source has the referrers API

	srcName string
	mu      sync.Mutex
	dstName string
	digest  v1.Hash
	stop    chan struct{}
	stopped chan struct{}
}

func (c *Copier) newRun(ctx context.Context, src, dst Endpoint, target name.Reference, srcName, dstName string) (*run, error) {
	r := &run{c: c, src: src, dst: dst, tally: &tally{}, srcName: srcName, dstName: dstName}
	if t, ok := target.(name.Tag); ok {
		r.tally.tag = t.TagStr()
	}
	var err error
	if r.srcRepo, err = src.repo(); err != nil {
		return nil, err
	}
	if r.dstRepo, err = dst.repo(); err != nil {
		return nil, err
	}
	srt, err := c.transport(src)
	if err != nil {
		return nil, err
	}
	drt, err := c.transport(dst)
	if err != nil {
		return nil, err
	}
	if r.puller, err = remote.NewPuller(c.options(ctx, src, srt)...); err != nil {
		return nil, err
	}
	if r.pusher, err = remote.NewPusher(c.options(ctx, dst, &observer{t: r.tally, next: drt})...); err != nil {
		return nil, err
	}
	if c.progress != nil {
		r.stop, r.stopped = make(chan struct{}), make(chan struct{})
		go r.reportLoop()
	}
	return r, nil
}

// reportLoop reports progress every c.every while the counts change.
func (r *run) reportLoop() {
	defer close(r.stopped)
	tk := time.NewTicker(r.c.every)
	defer tk.Stop()
	var last Result
	for {
		select {
		case <-r.stop:
			return
		case <-tk.C:
			if res := r.result(r.currentDigest()); res != last {
				last = res
				r.c.progress(r.snapshot(res, false))
			}
		}
	}
}

func (r *run) snapshot(res Result, done bool) Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Progress{Src: r.srcName, Dst: r.dstName, Result: res, Done: done}
}

func (r *run) currentDigest() v1.Hash {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.digest
}

func (r *run) setTarget(target name.Reference, h v1.Hash) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dstName, r.digest = target.String(), h
}

func (r *run) result(h v1.Hash) Result {
	res := r.tally.result()
	res.Digest = h
	return res
}

// finish stops the progress reports and sends the last one.
func (r *run) finish(h v1.Hash) {
	if r.stop == nil {
		return
	}
	close(r.stop)
	<-r.stopped
	r.c.progress(r.snapshot(r.result(h), true))
}

// copy does Copy's work; Result carries only the digest, the tally the rest.
func (r *run) copy(ctx context.Context, srcRef, target name.Reference, platforms []v1.Platform) (Result, error) {
	desc, err := r.puller.Get(ctx, srcRef)
	if err != nil {
		return Result{}, err
	}
	var t remote.Taggable = desc
	h, filtered := desc.Digest, false
	if platforms != nil {
		switch {
		case desc.MediaType.IsIndex():
			idx, changed, err := filterIndex(desc, platforms)
			if err != nil {
				return Result{}, err
			}
			if changed {
				if h, err = idx.Digest(); err != nil {
					return Result{}, err
				}
				t, filtered = idx, true
			}
		case desc.MediaType.IsImage():
			if err := imageMatches(desc, platforms); err != nil {
				return Result{}, err
			}
		}
	}
	// By digest first, then the referrers, then the tag: a tag never names an
	// image whose signatures are not there yet.
	byDigest := r.dstRepo.Digest(h.String())
	if target == nil {
		target = byDigest
	}
	r.setTarget(target, h)
	if err := r.pusher.Push(ctx, byDigest, t); err != nil {
		return Result{Digest: h}, err
	}

	raw, err := t.RawManifest()
	if err != nil {
		return Result{Digest: h}, err
	}
	subjects, err := r.children(ctx, raw, 0)
	if err != nil {
		return Result{Digest: h}, err
	}
	if !filtered {
		subjects = append([]v1.Hash{h}, subjects...)
		if err := r.copyCosignTags(ctx, h); err != nil {
			return Result{Digest: h}, err
		}
	}
	seen := map[v1.Hash]bool{}
	for _, s := range subjects {
		if err := r.copyReferrers(ctx, s, 0, seen); err != nil {
			return Result{Digest: h}, err
		}
	}

	if tag, ok := target.(name.Tag); ok {
		r.tally.expect.Store(tag.TagStr(), h.String())
		if err := r.pusher.Push(ctx, tag, t); err != nil {
			return Result{Digest: h}, err
		}
	}
	return Result{Digest: h}, nil
}

// children returns the digests of the manifests an index (raw) names, nested
// indexes' children included; nothing for an image manifest. Buildkit's
// attestation manifests are left out: they are referrers themselves.
func (r *run) children(ctx context.Context, raw []byte, depth int) ([]v1.Hash, error) {
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests []v1.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil || len(probe.Manifests) == 0 {
		return nil, nil //nolint:nilerr // not an index: no children
	}
	var out []v1.Hash
	for _, d := range probe.Manifests {
		if d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
			continue
		}
		switch {
		case d.MediaType.IsImage():
			out = append(out, d.Digest)
		case d.MediaType.IsIndex() && depth < 2:
			out = append(out, d.Digest)
			cd, err := r.puller.Get(ctx, r.srcRepo.Digest(d.Digest.String()))
			if err != nil {
				return nil, err
			}
			more, err := r.children(ctx, cd.Manifest, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		}
	}
	return out, nil
}

// copyReferrers copies the referrers of subject at the source, and theirs, to
// the destination, one at a time: a destination without the referrers API keeps
// them in one sha256-<hex> index per subject, which go-containerregistry
// updates with a read-modify-write that concurrent writers would race.
func (r *run) copyReferrers(ctx context.Context, subject v1.Hash, depth int, seen map[v1.Hash]bool) error {
	if depth >= maxReferrerDepth {
		return nil
	}
	list, err := r.referrers(ctx, subject)
	if err != nil {
		return fmt.Errorf("referrers of %s: %w", subject, err)
	}
	for _, d := range list {
		if seen[d.Digest] {
			continue
		}
		seen[d.Digest] = true
		if len(seen) > maxReferrers {
			return fmt.Errorf("referrers of %s: more than %d referrers", subject, maxReferrers)
		}
		rd, err := r.puller.Get(ctx, r.srcRepo.Digest(d.Digest.String()))
		if isNotFound(err) {
			// A tag-schema index can outlive a referrer deleted since.
			r.c.log.WithFields(logrus.Fields{"repository": r.srcRepo.Name(), "subject": subject.String(), "referrer": d.Digest.String()}).
				Warn("referrer listed but not found at the source: not copied")
			continue
		}
		if err != nil {
			return fmt.Errorf("referrer %s of %s: %w", d.Digest, subject, err)
		}
		if err := r.pusher.Push(ctx, r.dstRepo.Digest(d.Digest.String()), rd); err != nil {
			return fmt.Errorf("referrer %s of %s: %w", d.Digest, subject, err)
		}
		r.tally.referrers.Add(1)
		if err := r.copyReferrers(ctx, d.Digest, depth+1, seen); err != nil {
			return err
		}
	}
	return nil
}

// copyCosignTags copies the sha256-<hex>.sig/.att/.sbom tags cosign keeps for h,
// when the source has them (a HEAD each).
func (r *run) copyCosignTags(ctx context.Context, h v1.Hash) error {
	for _, suffix := range cosignSuffixes {
		tag := h.Algorithm + "-" + h.Hex + suffix
		src := r.srcRepo.Tag(tag)
		d, err := r.puller.Head(ctx, src)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("cosign tag %s: %w", tag, err)
		}
		desc, err := r.puller.Get(ctx, src.Context().Digest(d.Digest.String()))
		if err != nil {
			return fmt.Errorf("cosign tag %s: %w", tag, err)
		}
		r.tally.expect.Store(tag, d.Digest.String())
		if err := r.pusher.Push(ctx, r.dstRepo.Tag(tag), desc); err != nil {
			return fmt.Errorf("cosign tag %s: %w", tag, err)
		}
		r.tally.referrers.Add(1)
	}
	return nil
}

// filterIndex returns the index of desc reduced to the children whose platform
// satisfies one of platforms, and whether that is a new index (false: every child
// matched, desc itself is returned and its digest kept).
func filterIndex(desc *remote.Descriptor, platforms []v1.Platform) (v1.ImageIndex, bool, error) {
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, false, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, false, err
	}
	keep := map[v1.Hash]bool{}
	var have []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			continue
		}
		have = append(have, m.Platform.String())
		if matchPlatform(*m.Platform, platforms) {
			keep[m.Digest] = true
		}
	}
	if len(keep) == 0 {
		return nil, false, fmt.Errorf("%w %s (the index has %s)", ErrNoPlatform, platformList(platforms), strings.Join(have, ", "))
	}
	for _, m := range im.Manifests { // buildkit attestations follow their image
		if m.Annotations["vnd.docker.reference.type"] != "attestation-manifest" {
			continue
		}
		if h, err := v1.NewHash(m.Annotations["vnd.docker.reference.digest"]); err == nil && keep[h] {
			keep[m.Digest] = true
		}
	}
	if len(keep) == len(im.Manifests) {
		return idx, false, nil
	}
	return mutate.RemoveManifests(idx, func(d v1.Descriptor) bool { return !keep[d.Digest] }), true, nil
}

// imageMatches checks that a single image's platform (from its config)
// satisfies one of platforms. Artifacts, whose config is not an image config,
// have no platform and always match.
func imageMatches(desc *remote.Descriptor, platforms []v1.Platform) error {
	img, err := desc.Image()
	if err != nil {
		return err
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	if m.Config.MediaType != types.DockerConfigJSON && m.Config.MediaType != types.OCIConfigJSON {
		return nil
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	p := cf.Platform()
	if p == nil || matchPlatform(*p, platforms) {
		return nil
	}
	return fmt.Errorf("%w %s (the image is %s)", ErrNoPlatform, platformList(platforms), p)
}

// matchPlatform tells whether p satisfies one of want.
func matchPlatform(p v1.Platform, want []v1.Platform) bool {
	for _, w := range want {
		if p.Satisfies(w) {
			return true
		}
	}
	return false
}

func platformList(ps []v1.Platform) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// redact removes the query and user info of the URL in a *url.Error in err, in
// place: upload locations can carry signed tokens, and errors end up in logs and
// API answers. (go-containerregistry's *transport.Error redacts its own.)
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil && (u.RawQuery != "" || u.User != nil || u.Fragment != "") {
			u.RawQuery, u.User, u.Fragment = "", nil, ""
			ue.URL = u.String()
		}
	}
	return err
}

// isNotFound tells whether err is a registry's 404.
func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}
