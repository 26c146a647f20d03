package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/internal/redistest"
	"github.com/ocimirror/proxy/internal/s3test"
	"github.com/ocimirror/proxy/internal/testregistry"
)

// slowHeads is a front of the upstream registry that answers manifest HEADs
// after delay, so that a revalidation is still running while the other
// requests of a burst arrive.
func slowHeads(t *testing.T, upstreamURL string, delay time.Duration) string {
	t.Helper()
	return slowManifests(t, upstreamURL, http.MethodHead, delay)
}

// slowManifests is a front of the upstream registry that answers manifest
// requests of method after delay, so that one is still running while the
// other requests of a burst arrive.
func slowManifests(t *testing.T, upstreamURL, method string, delay time.Duration) string {
	t.Helper()
	u, _ := url.Parse(upstreamURL)
	rp := httputil.NewSingleHostReverseProxy(u)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == method && strings.Contains(r.URL.Path, "/manifests/") {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s.URL
}

// manifestDigest GETs the manifest ref of repo from base and returns the
// digest the proxy announced, after checking the body hashes to it.
func manifestDigest(ctx context.Context, base, repo, ref string) (digest.Digest, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/"+repo+"/manifests/"+ref, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	d := digest.Digest(resp.Header.Get("Docker-Content-Digest"))
	if digest.FromBytes(b) != d {
		return "", fmt.Errorf("body does not hash to the announced digest %q", d)
	}
	return d, nil
}

// tagBurst sends n concurrent GETs of repo:tag spread over the replicas and
// reports every answer that is not the manifest want.
func tagBurst(t *testing.T, rs []*replica, n int, repo, tag string, want digest.Digest) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := manifestDigest(ctx, rs[i%len(rs)].URL, repo, tag)
			if err == nil && d != want {
				err = fmt.Errorf("got %s, want %s", d, want)
			}
			if err != nil {
				errs <- fmt.Errorf("client %d (replica %d): %w", i, i%len(rs), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestS3ClusterTagRevalidation: three replicas sharing a bucket and a Redis
// hold a tag; 30 concurrent GETs of it spread over them revalidate it with
// one upstream HEAD for the whole cluster (not one per replica), and all get
// the tag's manifest; after the tag moved upstream, the next burst gets the
// new manifest, again with one HEAD; with Redis stopped the tag is still
// served (each replica revalidating alone).
func TestS3ClusterTagRevalidation(t *testing.T) {
	rs := redistest.Start(t)
	srv := s3test.Start(t)
	reg := testregistry.Start(t)
	img := reg.PushRandom(t, "cl/tag:v1", 1000, 1)
	want1, _ := img.Digest()
	up := slowHeads(t, reg.URL, time.Second)
	rs3 := startCluster(t, 3, srv, rs, up, 2*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if d, err := manifestDigest(ctx, rs3[0].URL, "cl/tag", "v1"); err != nil || d != digest.Digest(want1.String()) {
		t.Fatalf("cold GET of the tag: %s, %v", d, err)
	}

	heads := reg.Count("HEAD", "manifests")
	start := time.Now()
	tagBurst(t, rs3, 30, "cl/tag", "v1", digest.Digest(want1.String()))
	n := reg.Count("HEAD", "manifests") - heads
	t.Logf("30 GETs of a cached tag over 3 replicas: %d upstream HEADs, %v", n, time.Since(start))
	if n != 1 {
		t.Errorf("%d upstream HEADs for one burst across the cluster, want 1", n)
	}

	img2 := reg.PushRandom(t, "cl/tag:v1", 1000, 1)
	want2, _ := img2.Digest()
	heads = reg.Count("HEAD", "manifests")
	tagBurst(t, rs3, 30, "cl/tag", "v1", digest.Digest(want2.String()))
	n = reg.Count("HEAD", "manifests") - heads
	t.Logf("30 GETs after the tag moved: %d upstream HEADs", n)
	if n != 1 {
		t.Errorf("%d upstream HEADs for the burst after the tag moved, want 1", n)
	}

	rs.Stop()
	heads = reg.Count("HEAD", "manifests")
	start = time.Now()
	tagBurst(t, rs3, 30, "cl/tag", "v1", digest.Digest(want2.String()))
	t.Logf("30 GETs with redis down: %d upstream HEADs, %v", reg.Count("HEAD", "manifests")-heads, time.Since(start))
}
