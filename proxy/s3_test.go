package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/internal/s3test"
	"github.com/ocimirror/proxy/internal/testregistry"
	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
)

// s3Mirror is a mirror whose store is a versitygw bucket (prefix /cache), with
// its spool in a local state dir.
type s3Mirror struct {
	*mirror
	srv   *s3test.Server
	spool string
}

func startS3Mirror(t *testing.T, upstreamURL string, ix *scheduler.Index, copts ...cache.Option) *s3Mirror {
	t.Helper()
	srv := s3test.Start(t)
	state := t.TempDir()
	spool := filepath.Join(state, "spool")
	store, err := storage.NewS3(context.Background(), srv.Params("/cache"), spool)
	if err != nil {
		t.Fatal(err)
	}
	return &s3Mirror{mirror: startMirrorOn(t, store, state, upstreamURL, nil, ix, copts), srv: srv, spool: spool}
}

// hasBlob reports whether the bucket holds the blob d's data.
func (m *s3Mirror) hasBlob(t *testing.T, d string) bool {
	return slices.Contains(m.srv.Keys(t, ""), s3test.BlobKey("/cache", d))
}

// layerBytes returns the first layer of img: its digest and bytes.
func layerBytes(t *testing.T, img v1.Image) (string, []byte) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := layers[0].Digest()
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return d.String(), b
}

// TestS3PullColdWarm: a cold pull fills the bucket; a warm pull is served
// from it without one upstream blob request.
func TestS3PullColdWarm(t *testing.T) {
	reg := testregistry.Start(t)
	img := reg.PushRandom(t, "s3/app:v1", 300_000, 3)
	m := startS3Mirror(t, reg.URL, nil)

	m.pull(t, "s3/app:v1")
	ld, _ := layerBytes(t, img)
	cacheDone(t, m.mirror)
	if !m.hasBlob(t, ld) {
		t.Fatalf("layer %s not in the bucket after a cold pull: %v", ld, m.srv.Keys(t, ""))
	}
	for _, k := range m.srv.Keys(t, "") {
		if strings.Contains(k, "_proxy/spool") {
			t.Errorf("temporary key left in the bucket: %s", k)
		}
	}
	blobGets := reg.Count("GET", "blobs")
	if got := digestOf(t, m.pull(t, "s3/app:v1")); got != digestOf(t, img) {
		t.Fatalf("warm pull: manifest %s, want %s", got, digestOf(t, img))
	}
	if n := reg.Count("GET", "blobs"); n != blobGets {
		t.Fatalf("warm pull made %d upstream blob GETs, want none", n-blobGets)
	}
}

// cacheDone waits (bounded) until the cache has no fill in progress: a fill
// commits after its clients have the last byte.
func cacheDone(t *testing.T, m *mirror) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for m.Cache.Fills() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("fills still running after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestS3RangeHit: a Range request on a blob stored in the bucket gets the
// right bytes and headers.
func TestS3RangeHit(t *testing.T) {
	reg := testregistry.Start(t)
	img := reg.PushRandom(t, "s3/range:v1", 200_000, 1)
	m := startS3Mirror(t, reg.URL, nil)
	m.pull(t, "s3/range:v1")
	cacheDone(t, m.mirror)
	ld, body := layerBytes(t, img)
	before := reg.Count("GET", "blobs")

	req, _ := http.NewRequest(http.MethodGet, m.URL+"/v2/s3/range/blobs/"+ld, nil)
	req.Header.Set("Range", "bytes=1000-1999")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, body[1000:2000]) {
		t.Fatalf("range: %d, %d bytes (right bytes: %v)", resp.StatusCode, len(got), bytes.Equal(got, body[1000:2000]))
	}
	if cr := resp.Header.Get("Content-Range"); cr != "bytes 1000-1999/"+strconv.Itoa(len(body)) {
		t.Fatalf("Content-Range %q", cr)
	}
	if reg.Count("GET", "blobs") != before {
		t.Fatal("the range request went upstream")
	}
}

// TestS3Redirect: with redirects on, a hit is a 307 to a presigned URL that
// serves the blob's bytes (and a Range of them); a miss is still streamed.
func TestS3Redirect(t *testing.T) {
	reg := testregistry.Start(t)
	img := reg.PushRandom(t, "s3/redir:v1", 100_000, 1)
	m := startS3Mirror(t, reg.URL, nil, cache.WithRedirect(true))
	ld, body := layerBytes(t, img)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	get := func(url, rng string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	// The miss: streamed from the fill.
	resp, got := get(m.URL+"/v2/s3/redir/blobs/"+ld, "")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("miss: %d, %d bytes", resp.StatusCode, len(got))
	}
	cacheDone(t, m.mirror)
	// The hit: a redirect.
	resp, _ = get(m.URL+"/v2/s3/redir/blobs/"+ld, "")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, m.srv.Endpoint+"/") {
		t.Fatalf("hit: %d Location %q, want 307 to %s", resp.StatusCode, loc, m.srv.Endpoint)
	}
	if resp.Header.Get("Docker-Content-Digest") != ld {
		t.Errorf("redirect without Docker-Content-Digest")
	}
	if strings.Contains(loc, s3test.SecretKey) {
		t.Fatal("Location reveals the secret key")
	}
	resp, got = get(loc, "")
	if resp.StatusCode != http.StatusOK || digest.FromBytes(got).String() != ld {
		t.Fatalf("GET Location: %d, %d bytes, digest %s", resp.StatusCode, len(got), digest.FromBytes(got))
	}
	resp, got = get(loc, "bytes=10-19")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, body[10:20]) {
		t.Fatalf("Range on Location: %d %q", resp.StatusCode, got)
	}
	// A client that follows redirects (crane) pulls the image whole; the
	// second time every blob is a redirect and nothing goes upstream.
	m.pull(t, "s3/redir:v1")
	cacheDone(t, m.mirror)
	blobGets := reg.Count("GET", "blobs")
	m.pull(t, "s3/redir:v1")
	if reg.Count("GET", "blobs") != blobGets {
		t.Fatal("pull through redirects went upstream")
	}
}

// TestS3LyingUpstream: an upstream that sends wrong bytes for a digest leaves
// nothing in the bucket (nor a temporary key) and no spool file.
func TestS3LyingUpstream(t *testing.T) {
	good := bytes.Repeat([]byte("s3-layer "), 100_000)
	d := digest.FromBytes(good)
	bad := bytes.Clone(good)
	bad[len(bad)/2] ^= 1
	up := liar(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(bad) })
	m := startS3Mirror(t, up.URL, nil)
	status, body, declared, failed := readAll(t, m.URL+"/v2/lie/blobs/"+d.String())
	if status == 200 && !failed && (declared < 0 || int64(len(body)) == declared) {
		t.Fatalf("client got a clean complete response (%d bytes) of unverified content", len(body))
	}
	waitFillsDone(t, m.mirror, d)
	if keys := m.srv.Keys(t, ""); len(keys) != 0 {
		t.Fatalf("bucket holds %v after a lying upstream", keys)
	}
	if _, err := m.Store.StatBlob(context.Background(), d); err == nil {
		t.Fatal("the store reports the blob")
	}
	if spool, _ := os.ReadDir(m.spool); len(spool) != 0 {
		t.Fatalf("spool files left behind: %d", len(spool))
	}
}

// TestS3EvictionAfterTTL: with a short TTL the evictor deletes the content
// from the bucket.
func TestS3EvictionAfterTTL(t *testing.T) {
	reg := testregistry.Start(t)
	img := reg.PushRandom(t, "s3/ev:v1", 2000, 2)
	ix, err := scheduler.Open(filepath.Join(t.TempDir(), "scheduler.db"),
		scheduler.WithTTL(time.Second), scheduler.WithFlushInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ix.Close() })
	m := startS3Mirror(t, reg.URL, ix)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		scheduler.NewEvictor(ix, cache.Deleter{Store: m.Store, Caches: []*cache.Cache{m.Cache}}).Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })

	m.pull(t, "s3/ev:v1")
	ld, _ := layerBytes(t, img)
	cacheDone(t, m.mirror)
	deadline := time.Now().Add(15 * time.Second)
	for {
		keys := m.srv.Keys(t, "cache/docker/registry/v2/blobs/")
		if len(keys) == 0 && ix.Len() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not evicted 15s after a 1s TTL: bucket blobs %v, %d index entries", keys, ix.Len())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if m.hasBlob(t, ld) {
		t.Fatal("layer still in the bucket")
	}
	if got := digestOf(t, m.pull(t, "s3/ev:v1")); got != digestOf(t, img) {
		t.Fatalf("pull after eviction: %s", got)
	}
}
