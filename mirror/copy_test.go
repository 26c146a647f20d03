package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ocimirror/proxy/internal/testregistry"
)

// TestCopyIndexWithReferrers copies a linux/amd64 + linux/arm64 + windows/amd64
// index with a signature on the index and an SBOM on the arm64 image from one
// distribution registry to another. distribution has no referrers API, so the
// referrers are found through the sha256-<hex> tag schema at the source and
// kept in it at the destination.
func TestCopyIndexWithReferrers(t *testing.T) {
	src, dst := testregistry.Start(t), testregistry.Start(t)
	idx, imgs := platformIndex(t, 32<<10, 2)
	src.PushIndex(t, "team/app:v1", idx)
	idxDesc := describe(t, idx)
	sig := artifact(t, idxDesc, "application/vnd.dev.cosign.artifact.sig.v1+json")
	sbom := artifact(t, describe(t, imgs[1]), "application/spdx+json")
	writeBy(t, src.Host, "team/app@"+digestOf(t, sig).String(), sig)
	writeBy(t, src.Host, "team/app@"+digestOf(t, sbom).String(), sbom)
	if headDigest(t, src.Host, "team/app:sha256-"+idxDesc.Digest.Hex) == "" {
		t.Fatal("setup: the source has no referrers tag for the index")
	}

	gets, apiGets := src.Count(http.MethodGet, "manifests"), src.Count(http.MethodGet, "referrers")
	var reports []Progress
	c := NewCopier(quickRetries, WithProgress(func(p Progress) { reports = append(reports, p) }))
	res, err := c.Copy(context.Background(), endpoint(t, src.Host, "team/app"), "v1", endpoint(t, dst.Host, "mirror/app"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("result %+v", res)
	if res.Digest != idxDesc.Digest {
		t.Errorf("result digest %s, want the source's %s", res.Digest, idxDesc.Digest)
	}
	if got := headDigest(t, dst.Host, "mirror/app:v1"); got != idxDesc.Digest.String() {
		t.Errorf("destination v1 is %q, want the source's %s", got, idxDesc.Digest)
	}
	for i, img := range imgs {
		h := digestOf(t, img)
		if got := headDigest(t, dst.Host, "mirror/app@"+h.String()); got != h.String() {
			t.Errorf("child %d (%s) missing at the destination", i, h)
		}
	}
	if !hasDigest(referrersAt(t, dst.Host, "mirror/app", idxDesc.Digest), digestOf(t, sig)) {
		t.Error("the signature is not a referrer of the index at the destination")
	}
	if !hasDigest(referrersAt(t, dst.Host, "mirror/app", digestOf(t, imgs[1])), digestOf(t, sbom)) {
		t.Error("the SBOM is not a referrer of the arm64 image at the destination")
	}
	// 3 images of 2 layers and a config, 2 artifacts of 1 layer and a config.
	if res.Referrers != 2 || res.Blobs != 3*3+2*2 || res.Manifests != 4+2 || res.Mounted != 0 || !res.Tagged || res.Skipped != 0 {
		t.Errorf("result %+v: want 2 referrers, 13 blobs, 6 manifests, tagged, none mounted or skipped", res)
	}
	if res.Bytes < 6*(32<<10) {
		t.Errorf("result says %d bytes uploaded, want at least the 6 layers' %d", res.Bytes, 6*(32<<10))
	}
	// The API is asked once; then the tag schema: a HEAD per manifest, a GET
	// only for the two that have referrers. Manifest GETs: the index, its 3
	// images, 2 referrers tags, 2 referrers.
	if n := src.Count(http.MethodGet, "referrers") - apiGets; n != 1 {
		t.Errorf("the source's referrers API was asked %d times, want once", n)
	}
	if n := src.Count(http.MethodGet, "manifests") - gets; n != 8 {
		t.Errorf("%d manifest GETs at the source, want 8", n)
	}
	if len(reports) == 0 || !reports[len(reports)-1].Done || reports[len(reports)-1].Result != res {
		t.Errorf("last progress report %+v, want Done with the result", reports[len(reports)-1:])
	}
}

// TestCopyAgainSkips copies an index twice: the second copy finds the tag with
// the same digest and sends no blob. A copy of one platform image under a new
// tag HEADs its blobs and skips every one.
func TestCopyAgainSkips(t *testing.T) {
	src, dst := testregistry.Start(t), testregistry.Start(t)
	idx, imgs := platformIndex(t, 32<<10, 2)
	src.PushIndex(t, "team/app:v1", idx)
	c := NewCopier(quickRetries)
	s, d := endpoint(t, src.Host, "team/app"), endpoint(t, dst.Host, "team/app")
	if _, err := c.Copy(context.Background(), s, "v1", d, "", nil); err != nil {
		t.Fatal(err)
	}
	uploads := func() int64 {
		return dst.Count(http.MethodPost, "blobs/uploads") + dst.Count(http.MethodPatch, "blobs/uploads") + dst.Count(http.MethodPut, "blobs/uploads")
	}
	before, srcBlobGets := uploads(), src.Count(http.MethodGet, "blobs")

	res, err := c.Copy(context.Background(), s, "v1", d, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second copy %+v", res)
	if uploads() != before || src.Count(http.MethodGet, "blobs") != srcBlobGets {
		t.Errorf("second copy uploaded (%d upload requests) or downloaded blobs", uploads()-before)
	}
	if res.Blobs != 0 || res.Manifests != 0 || res.Skipped != 1 || res.Tagged || !res.UpToDate() || res.Digest != digestOf(t, idx) {
		t.Errorf("second copy %+v: want nothing written and the index skipped", res)
	}

	// The amd64 image by digest under a new tag: the manifest is there, so only
	// the tag is written, without a look at its blobs.
	heads := dst.Count(http.MethodHead, "blobs")
	amd := digestOf(t, imgs[0])
	res, err = c.Copy(context.Background(), s, amd.String(), d, "amd64", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := dst.Count(http.MethodHead, "blobs") - heads; got != 0 || !res.Tagged || res.Skipped != 1 || res.Manifests != 0 || uploads() != before {
		t.Errorf("tag copy: %d blob HEADs, %+v: want only the tag written", got, res)
	}
	if got := headDigest(t, dst.Host, "team/app:amd64"); got != amd.String() {
		t.Errorf("amd64 tag is %q, want %s", got, amd)
	}

	// A new manifest of the same config and layers: 3 blob HEADs, all skipped.
	annotated := mutate.Annotations(imgs[0], map[string]string{"org.example": "x"}).(v1.Image)
	src.Push(t, "team/app:annotated", annotated)
	res, err = c.Copy(context.Background(), s, "annotated", d, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("new manifest, old blobs: %+v", res)
	if got := dst.Count(http.MethodHead, "blobs") - heads; got != 3 || res.Skipped != 3 || res.Blobs != 0 || res.Manifests != 1 || uploads() != before {
		t.Errorf("copy of a new manifest of old blobs: %d blob HEADs, %+v, %d uploads: want 3 HEADs, 3 skipped, nothing uploaded", got, res, uploads()-before)
	}
}

// TestCopyMountsWithinRegistry copies between two repositories of one registry:
// every blob is mounted, none uploaded.
func TestCopyMountsWithinRegistry(t *testing.T) {
	reg := testregistry.Start(t)
	idx, _ := platformIndex(t, 32<<10, 2)
	reg.PushIndex(t, "team/app:v1", idx)
	patches, puts := reg.Count(http.MethodPatch, "blobs/uploads"), reg.Count(http.MethodPut, "blobs/uploads")
	posts := reg.Count(http.MethodPost, "blobs/uploads")

	c := NewCopier(quickRetries)
	res, err := c.Copy(context.Background(), endpoint(t, reg.Host, "team/app"), "v1", endpoint(t, reg.Host, "other/app"), "v2", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("result %+v", res)
	if res.Mounted != 9 || res.Blobs != 0 || res.Bytes != 0 {
		t.Errorf("result %+v: want 9 blobs mounted, none uploaded", res)
	}
	if reg.Count(http.MethodPatch, "blobs/uploads") != patches || reg.Count(http.MethodPut, "blobs/uploads") != puts ||
		reg.Count(http.MethodPost, "blobs/uploads")-posts != 9 {
		t.Error("blobs were uploaded, or not one mount POST per blob")
	}
	if got := headDigest(t, reg.Host, "other/app:v2"); got != digestOf(t, idx).String() {
		t.Errorf("other/app:v2 is %q, want %s", got, digestOf(t, idx))
	}
}

// TestCopyPlatformFilter copies two of three platforms: a new two-child index.
func TestCopyPlatformFilter(t *testing.T) {
	src, dst := testregistry.Start(t), testregistry.Start(t)
	idx, imgs := platformIndex(t, 16<<10, 1)
	src.PushIndex(t, "team/app:v1", idx)
	sig := artifact(t, describe(t, idx), "application/vnd.dev.cosign.artifact.sig.v1+json")
	writeBy(t, src.Host, "team/app@"+digestOf(t, sig).String(), sig)
	c := NewCopier(quickRetries)
	s, d := endpoint(t, src.Host, "team/app"), endpoint(t, dst.Host, "team/app")

	res, err := c.Copy(context.Background(), s, "v1", d, "", []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest == digestOf(t, idx) || headDigest(t, dst.Host, "team/app:v1") != res.Digest.String() {
		t.Errorf("destination index %s: want a new index, named by the tag", res.Digest)
	}
	got, err := remote.Index(dst.Ref(t, "team/app:v1"))
	if err != nil {
		t.Fatal(err)
	}
	im, err := got.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 || im.Manifests[0].Digest != digestOf(t, imgs[0]) || im.Manifests[1].Digest != digestOf(t, imgs[1]) {
		t.Errorf("destination index has %d manifests %+v, want the amd64 and arm64 images", len(im.Manifests), im.Manifests)
	}
	if headDigest(t, dst.Host, "team/app@"+digestOf(t, imgs[2]).String()) != "" {
		t.Error("the windows image was copied")
	}
	if res.Referrers != 0 {
		t.Errorf("%d referrers copied: the index's signature does not sign the new index", res.Referrers)
	}

	// Every child matching keeps the index as it is.
	res, err = c.Copy(context.Background(), s, "v1", d, "all", []v1.Platform{{OS: "linux"}, {OS: "windows"}})
	if err != nil || res.Digest != digestOf(t, idx) {
		t.Errorf("copy with a filter every child passes: %s, %v; want the source digest", res.Digest, err)
	}
	// None matching, and a single image of another platform, is ErrNoPlatform.
	_, err = c.Copy(context.Background(), s, "v1", d, "none", []v1.Platform{{OS: "linux", Architecture: "s390x"}})
	if !errors.Is(err, ErrNoPlatform) || headDigest(t, dst.Host, "team/app:none") != "" {
		t.Errorf("copy of no platform: %v, want ErrNoPlatform and no tag", err)
	}
	_, err = c.Copy(context.Background(), s, digestOf(t, imgs[2]).String(), d, "win", []v1.Platform{{OS: "linux"}})
	if !errors.Is(err, ErrNoPlatform) {
		t.Errorf("copy of a windows image for linux: %v, want ErrNoPlatform", err)
	}
	if _, err = c.Copy(context.Background(), s, digestOf(t, imgs[2]).String(), d, "win", []v1.Platform{{OS: "windows"}}); err != nil {
		t.Errorf("copy of a windows image for windows: %v", err)
	}
}

// TestCopyReferrersAPI copies from a source that serves the referrers API (a
// front on distribution that answers /referrers/ itself): the signature is found
// through the API alone, the source having no sha256-<hex> tag.
func TestCopyReferrersAPI(t *testing.T) {
	src, dst := testregistry.Start(t), testregistry.Start(t)
	idx, _ := platformIndex(t, 8<<10, 1)
	src.PushIndex(t, "team/app:v1", idx)
	idxDesc := describe(t, idx)
	sig := artifact(t, idxDesc, "application/vnd.dev.cosign.artifact.sig.v1+json")
	sigDesc := describe(t, sig)
	sigDesc.ArtifactType = "application/vnd.dev.cosign.artifact.sig.v1+json"
	var apiHits atomic.Int64
	f := newFront(t, src, func(w http.ResponseWriter, r *http.Request) bool {
		_, dgst, ok := strings.Cut(r.URL.Path, "/referrers/")
		if !ok {
			return false
		}
		apiHits.Add(1)
		list := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
		if dgst == idxDesc.Digest.String() {
			list.Manifests = append(list.Manifests, sigDesc)
		}
		w.Header().Set("Content-Type", string(types.OCIImageIndex))
		_ = json.NewEncoder(w).Encode(list)
		return true
	})
	// Pushed through the front, which has the API: no tag schema index is made.
	writeBy(t, f.Host, "team/app@"+sigDesc.Digest.String(), sig)
	if headDigest(t, src.Host, "team/app:sha256-"+idxDesc.Digest.Hex) != "" {
		t.Fatal("setup: the source has a referrers tag")
	}

	c := NewCopier(quickRetries)
	res, err := c.Copy(context.Background(), endpoint(t, f.Host, "team/app"), "v1", endpoint(t, dst.Host, "team/app"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if apiHits.Load() < 3 || res.Referrers != 1 {
		t.Errorf("%d referrers API requests, %d referrers copied: want one request per manifest and the signature", apiHits.Load(), res.Referrers)
	}
	if !hasDigest(referrersAt(t, dst.Host, "team/app", idxDesc.Digest), sigDesc.Digest) {
		t.Error("the signature is not a referrer of the index at the destination")
	}
}

// TestCopyCosignTag copies cosign's sha256-<hex>.sig tag along with an image
// copied by tag alone.
func TestCopyCosignTag(t *testing.T) {
	src, dst := testregistry.Start(t), testregistry.Start(t)
	img := src.PushRandom(t, "team/app:v1", 1024, 1)
	h := digestOf(t, img)
	src.PushRandom(t, "team/app:sha256-"+h.Hex+".sig", 200, 1)
	c := NewCopier(quickRetries)
	res, err := c.Copy(context.Background(), endpoint(t, src.Host, "team/app"), "v1", endpoint(t, dst.Host, "team/app"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := headDigest(t, src.Host, "team/app:sha256-"+h.Hex+".sig")
	if got := headDigest(t, dst.Host, "team/app:sha256-"+h.Hex+".sig"); got != want || res.Referrers != 1 {
		t.Errorf("cosign tag at the destination %q (want %s), %d referrers", got, want, res.Referrers)
	}
}

// TestCopyCancel cancels a copy while a big blob streams through a slow front:
// Copy returns soon with context.Canceled and the tag is not written.
func TestCopyCancel(t *testing.T) {
	src, dst := testregistry.Start(t), testregistry.Start(t)
	const size = 2 << 20 // streams in about 13s at the front's pace
	src.PushRandom(t, "team/big:v1", size, 1)
	f := newFront(t, src, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") {
			return false
		}
		rec := &slowWriter{ResponseWriter: w, ctx: r.Context()}
		return serveThrough(src, rec, r)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	moving := make(chan struct{})
	var once bool
	c := NewCopier(quickRetries, WithProgress(func(p Progress) {
		if p.Bytes > 32<<10 && !once {
			once = true
			close(moving)
		}
	}))
	c.every = 20 * time.Millisecond
	type outcome struct {
		err error
		at  time.Time
	}
	done := make(chan outcome, 1)
	go func() {
		_, err := c.Copy(ctx, endpoint(t, f.Host, "team/big"), "v1", endpoint(t, dst.Host, "team/big"), "", nil)
		done <- outcome{err, time.Now()}
	}()
	select {
	case <-moving:
	case o := <-done:
		t.Fatalf("copy ended before bytes moved: %v", o.err)
	case <-time.After(20 * time.Second):
		t.Fatal("no bytes moved in 20s")
	}
	cancelled := time.Now()
	cancel()
	select {
	case o := <-done:
		t.Logf("returned %v after the cancel: %v", o.at.Sub(cancelled), o.err)
		if !errors.Is(o.err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", o.err)
		}
		if o.at.Sub(cancelled) > 5*time.Second {
			t.Errorf("returned %v after the cancel", o.at.Sub(cancelled))
		}
	case <-time.After(15 * time.Second):
		t.Fatal("copy still running 15s after the cancel")
	}
	if got := headDigest(t, dst.Host, "team/big:v1"); got != "" {
		t.Errorf("destination tag written (%s) by a cancelled copy", got)
	}
}

// slowWriter passes a response on 8 KiB every 50ms.
type slowWriter struct {
	http.ResponseWriter
	ctx context.Context
}

func (s *slowWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), 8<<10)]
		m, err := s.ResponseWriter.Write(chunk)
		n += m
		if err != nil {
			return n, err
		}
		if f, ok := s.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		p = p[len(chunk):]
		select {
		case <-s.ctx.Done():
			return n, s.ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return n, nil
}

// serveThrough answers r from reg's handler through w.
func serveThrough(reg *testregistry.Registry, w http.ResponseWriter, r *http.Request) bool {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, reg.URL+r.URL.RequestURI(), nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return true
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return true
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	buf := make([]byte, 64<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return true
			}
		}
		if err != nil {
			return true
		}
	}
}
