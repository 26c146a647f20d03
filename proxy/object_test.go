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
	"github.com/ocimirror/proxy/internal/azuretest"
	"github.com/ocimirror/proxy/internal/gcstest"
	"github.com/ocimirror/proxy/internal/objtest"
	"github.com/ocimirror/proxy/internal/s3test"
	"github.com/ocimirror/proxy/internal/testregistry"
	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
)

// TestS3: the mirror on a versitygw bucket.
func TestS3(t *testing.T) { objtest.Run(t, s3test.Backend, nil, objectMirrorCases) }

// TestGCS: the mirror on a fake-gcs-server bucket.
func TestGCS(t *testing.T) { objtest.Run(t, gcstest.Backend, nil, objectMirrorCases) }

// TestAzure: the mirror on an Azurite container, over https for redirects
// (SAS URLs say https).
func TestAzure(t *testing.T) {
	objtest.Run(t, azuretest.Backend, azuretest.BackendTLS, objectMirrorCases)
}

// objectMirrorCases are the mirror's tests on every object storage driver.
var objectMirrorCases = []objtest.Case{
	{Name: "PullColdWarm", Run: testPullColdWarm},
	{Name: "RangeHit", Run: testRangeHit},
	{Name: "LyingUpstream", Run: testLyingUpstreamObject},
	{Name: "EvictionAfterTTL", Run: testEvictionAfterTTL},
	{Name: "Redirect", Run: testRedirect, Redirect: true},
}

// objMirror is a mirror whose store is an emulator's bucket under a key
// prefix, with its spool in a local state dir.
type objMirror struct {
	*mirror
	b     objtest.Backend
	root  string
	spool string
}

func startObjMirror(t *testing.T, b objtest.Backend, root, upstreamURL string, ix *scheduler.Index, copts ...cache.Option) *objMirror {
	t.Helper()
	state := t.TempDir()
	spool := filepath.Join(state, "spool")
	store, err := storage.NewObjectStore(b.Context(context.Background()), b.Driver(), b.Params(root), spool)
	if err != nil {
		t.Fatal(err)
	}
	return &objMirror{mirror: startMirrorOn(t, store, state, upstreamURL, nil, ix, copts), b: b, root: root, spool: spool}
}

// keys lists the keys under the mirror's prefix.
func (m *objMirror) keys(t *testing.T, under string) []string {
	return m.b.Keys(t, keyPath(m.root, under))
}

// keyPath joins a key prefix and a path below it, without the leading "/".
func keyPath(root, under string) string {
	return strings.TrimPrefix(root+"/"+under, "/")
}

// hasBlob reports whether the bucket holds the blob d's data.
func (m *objMirror) hasBlob(t *testing.T, d string) bool {
	return slices.Contains(m.keys(t, ""), objtest.BlobKey(m.root, d))
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

// testPullColdWarm: a cold pull fills the bucket through a temporary key
// (none is left); a warm pull is served from it without one upstream blob
// request.
func testPullColdWarm(t *testing.T, b objtest.Backend, root string) {
	reg := testregistry.Start(t)
	img := reg.PushRandom(t, "obj/app:v1", 300_000, 3)
	m := startObjMirror(t, b, root, reg.URL, nil)

	m.pull(t, "obj/app:v1")
	ld, _ := layerBytes(t, img)
	cacheDone(t, m.mirror)
	if !m.hasBlob(t, ld) {
		t.Fatalf("layer %s not in the bucket after a cold pull: %v", ld, m.keys(t, ""))
	}
	for _, k := range m.keys(t, "") {
		if strings.Contains(k, "_proxy/spool") {
			t.Errorf("temporary key left in the bucket: %s", k)
		}
	}
	blobGets := reg.Count("GET", "blobs")
	if got := digestOf(t, m.pull(t, "obj/app:v1")); got != digestOf(t, img) {
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

// testRangeHit: a Range request on a blob stored in the bucket gets the
// right bytes and headers.
func testRangeHit(t *testing.T, b objtest.Backend, root string) {
	reg := testregistry.Start(t)
	img := reg.PushRandom(t, "obj/range:v1", 200_000, 1)
	m := startObjMirror(t, b, root, reg.URL, nil)
	m.pull(t, "obj/range:v1")
	cacheDone(t, m.mirror)
	ld, body := layerBytes(t, img)
	before := reg.Count("GET", "blobs")

	req, _ := http.NewRequest(http.MethodGet, m.URL+"/v2/obj/range/blobs/"+ld, nil)
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

// testRedirect: with redirects on, a hit is a 307 to a signed URL of the
// backend that serves the blob's bytes (and a Range of them); a miss is
// still streamed.
func testRedirect(t *testing.T, b objtest.Backend, root string) {
	reg := testregistry.Start(t)
	img := reg.PushRandom(t, "obj/redir:v1", 100_000, 1)
	m := startObjMirror(t, b, root, reg.URL, nil, cache.WithRedirect(true))
	ld, body := layerBytes(t, img)
	noFollow := b.Client()
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

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
	resp, got := get(m.URL+"/v2/obj/redir/blobs/"+ld, "")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("miss: %d, %d bytes", resp.StatusCode, len(got))
	}
	cacheDone(t, m.mirror)
	// The hit: a redirect.
	resp, _ = get(m.URL+"/v2/obj/redir/blobs/"+ld, "")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !objtest.PointsAt(loc, b) {
		t.Fatalf("hit: %d Location %q, want 307 to %s", resp.StatusCode, loc, b.URL())
	}
	if resp.Header.Get("Docker-Content-Digest") != ld {
		t.Errorf("redirect without Docker-Content-Digest")
	}
	if strings.Contains(loc, b.Secret()) {
		t.Fatal("Location reveals the secret")
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
	rt := b.Client().Transport
	m.pullVia(t, "obj/redir:v1", rt)
	cacheDone(t, m.mirror)
	blobGets := reg.Count("GET", "blobs")
	m.pullVia(t, "obj/redir:v1", rt)
	if reg.Count("GET", "blobs") != blobGets {
		t.Fatal("pull through redirects went upstream")
	}
}

// testLyingUpstreamObject: an upstream that sends wrong bytes for a digest
// leaves nothing in the bucket (at the final key or a temporary one) and no
// spool file.
func testLyingUpstreamObject(t *testing.T, b objtest.Backend, root string) {
	good := bytes.Repeat([]byte("obj-layer "), 100_000)
	d := digest.FromBytes(good)
	bad := bytes.Clone(good)
	bad[len(bad)/2] ^= 1
	up := liar(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(bad) })
	m := startObjMirror(t, b, root, up.URL, nil)
	status, body, declared, failed := readAll(t, m.URL+"/v2/lie/blobs/"+d.String())
	if status == 200 && !failed && (declared < 0 || int64(len(body)) == declared) {
		t.Fatalf("client got a clean complete response (%d bytes) of unverified content", len(body))
	}
	waitFillsDone(t, m.mirror, d)
	if keys := m.keys(t, ""); len(keys) != 0 {
		t.Fatalf("bucket holds %v after a lying upstream", keys)
	}
	if _, err := m.Store.StatBlob(context.Background(), d); err == nil {
		t.Fatal("the store reports the blob")
	}
	if spool, _ := os.ReadDir(m.spool); len(spool) != 0 {
		t.Fatalf("spool files left behind: %d", len(spool))
	}
}

// testEvictionAfterTTL: with a short TTL the evictor deletes the content
// from the bucket.
func testEvictionAfterTTL(t *testing.T, b objtest.Backend, root string) {
	reg := testregistry.Start(t)
	img := reg.PushRandom(t, "obj/ev:v1", 2000, 2)
	ix, err := scheduler.Open(filepath.Join(t.TempDir(), "scheduler.db"),
		scheduler.WithTTL(time.Second), scheduler.WithFlushInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ix.Close() })
	m := startObjMirror(t, b, root, reg.URL, ix)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		scheduler.NewEvictor(ix, cache.Deleter{Store: m.Store, Caches: []*cache.Cache{m.Cache}}).Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })

	m.pull(t, "obj/ev:v1")
	ld, _ := layerBytes(t, img)
	cacheDone(t, m.mirror)
	deadline := time.Now().Add(15 * time.Second)
	for {
		keys := m.keys(t, "docker/registry/v2/blobs/")
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
	if got := digestOf(t, m.pull(t, "obj/ev:v1")); got != digestOf(t, img) {
		t.Fatalf("pull after eviction: %s", got)
	}
}
