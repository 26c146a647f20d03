package proxy

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/internal/testregistry"
	"github.com/ocimirror/proxy/upstream"
)

func digestOf(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestPullThrough pulls cold and warm, anonymously and behind token auth with
// credentials: the warm pull makes no upstream blob GET.
func TestPullThrough(t *testing.T) {
	for _, auth := range []bool{false, true} {
		t.Run(fmt.Sprintf("auth=%v", auth), func(t *testing.T) {
			var reg *testregistry.Registry
			var opts []upstream.Option
			if auth {
				reg = testregistry.Start(t, testregistry.WithTokenAuth("alice", "s3cret"))
				opts = append(opts, upstream.WithCredentials("alice", "s3cret"))
			} else {
				reg = testregistry.Start(t)
			}
			img := reg.PushRandom(t, "team/app:v1", 300_000, 3)
			m := startMirror(t, reg.URL, opts...)

			got := m.pull(t, "team/app:v1")
			if digestOf(t, got) != digestOf(t, img) {
				t.Fatalf("cold pull digest %s, want %s", digestOf(t, got), digestOf(t, img))
			}
			coldBlobs := reg.Count("GET", "blobs")
			if coldBlobs != 4 { // 3 layers and the config
				t.Fatalf("cold pull made %d upstream blob GETs, want 4", coldBlobs)
			}
			m.pull(t, "team/app:v1")
			if n := reg.Count("GET", "blobs"); n != coldBlobs {
				t.Fatalf("warm pull made %d more upstream blob GETs, want 0", n-coldBlobs)
			}
			if auth && reg.Count("GET", "token") == 0 {
				t.Fatal("no token was fetched from the realm")
			}
		})
	}
}

func TestTagMovedUpstream(t *testing.T) {
	reg := testregistry.Start(t)
	reg.PushRandom(t, "app:latest", 1000, 1)
	m := startMirror(t, reg.URL)
	m.pull(t, "app:latest")
	img2 := reg.PushRandom(t, "app:latest", 1000, 1)
	got := m.pull(t, "app:latest")
	if digestOf(t, got) != digestOf(t, img2) {
		t.Fatalf("after the tag moved the mirror served %s, want %s", digestOf(t, got), digestOf(t, img2))
	}
}

func TestUpstreamDownServesStale(t *testing.T) {
	reg := testregistry.Start(t)
	img := reg.PushRandom(t, "app:v1", 5000, 2)
	m := startMirror(t, reg.URL)
	m.pull(t, "app:v1")
	reg.Stop()
	got := m.pull(t, "app:v1")
	if digestOf(t, got) != digestOf(t, img) {
		t.Fatal("stale pull returned another image")
	}
	// Uncached content is an error, not a hang or a 500.
	code, _, body := get(t, "GET", m.URL+"/v2/app/manifests/other", nil)
	if code != http.StatusBadGateway && code != http.StatusServiceUnavailable && code != http.StatusGatewayTimeout {
		t.Fatalf("uncached tag with upstream down: %d %s", code, body)
	}
	errCode(t, body)
}

func TestUpstream404IsNotServedStale(t *testing.T) {
	reg := testregistry.Start(t)
	img := reg.PushRandom(t, "app:gone", 1000, 1)
	m := startMirror(t, reg.URL)
	m.pull(t, "app:gone")
	reg.Delete(t, "app@"+digestOf(t, img).String())
	code, _, body := get(t, "GET", m.URL+"/v2/app/manifests/gone", nil)
	if code != http.StatusNotFound || errCode(t, body) != "MANIFEST_UNKNOWN" {
		t.Fatalf("tag deleted upstream: %d %s, want 404 MANIFEST_UNKNOWN", code, body)
	}
}

// TestConcurrentColdBlob: 20 clients ask for one cold blob at once; the upstream
// serves it once and every client gets the right bytes.
func TestConcurrentColdBlob(t *testing.T) {
	reg := testregistry.Start(t)
	img := reg.PushRandom(t, "herd:v1", 8<<20, 1)
	layers, _ := img.Layers()
	dgst, _ := layers[0].Digest()
	m := startMirror(t, reg.URL)
	before := reg.Count("GET", "blobs")

	const clients = 20
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(m.URL + "/v2/herd/blobs/" + dgst.String())
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			h := sha256.New()
			if _, err := io.Copy(h, resp.Body); err != nil {
				errs <- err
				return
			}
			if got := fmt.Sprintf("sha256:%x", h.Sum(nil)); resp.StatusCode != 200 || got != dgst.String() {
				errs <- fmt.Errorf("status %d digest %s", resp.StatusCode, got)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := reg.Count("GET", "blobs") - before; n != 1 {
		t.Fatalf("%d clients made %d upstream blob GETs, want 1", clients, n)
	}
}

func TestBlobRange(t *testing.T) {
	reg := testregistry.Start(t)
	content := bytes.Repeat([]byte("0123456789"), 1000)
	layer := static.NewLayer(content, types.DockerLayer)
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "rng:v1", img)
	dgst, _ := layer.Digest()
	m := startMirror(t, reg.URL)
	url := m.URL + "/v2/rng/blobs/" + dgst.String()

	for _, warm := range []bool{false, true} { // the first GET fills, the second hits
		code, hdr, body := get(t, "GET", url, map[string]string{"Range": "bytes=10-19"})
		if code != http.StatusPartialContent || string(body) != "0123456789" ||
			hdr.Get("Content-Range") != "bytes 10-19/10000" {
			t.Fatalf("warm=%v range: %d %q %q", warm, code, hdr.Get("Content-Range"), body)
		}
	}
	code, hdr, body := get(t, "GET", url, map[string]string{"Range": "bytes=-5"})
	if code != http.StatusPartialContent || string(body) != "56789" {
		t.Fatalf("suffix range: %d %q", code, body)
	}
	code, hdr, body = get(t, "GET", url, map[string]string{"Range": "bytes=10000-"})
	if code != http.StatusRequestedRangeNotSatisfiable || errCode(t, body) != "RANGE_INVALID" ||
		hdr.Get("Content-Range") != "bytes */10000" {
		t.Fatalf("unsatisfiable range: %d %q %s", code, hdr.Get("Content-Range"), body)
	}
	code, hdr, body = get(t, "HEAD", url, nil)
	if code != 200 || hdr.Get("Content-Length") != "10000" || hdr.Get("Docker-Content-Digest") != dgst.String() || len(body) != 0 {
		t.Fatalf("HEAD: %d %v", code, hdr)
	}
	code, _, _ = get(t, "GET", url, map[string]string{"If-None-Match": `"` + dgst.String() + `"`})
	if code != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d", code)
	}
}

func TestManifestHeaders(t *testing.T) {
	reg := testregistry.Start(t)
	img := reg.PushRandom(t, "hdr:v1", 100, 1)
	raw, _ := img.RawManifest()
	mt, _ := img.MediaType()
	d := digestOf(t, img)
	m := startMirror(t, reg.URL)
	for _, ref := range []string{"v1", d.String()} {
		for _, method := range []string{"GET", "HEAD"} {
			code, hdr, body := get(t, method, m.URL+"/v2/hdr/manifests/"+ref, nil)
			if code != 200 || hdr.Get("Content-Type") != string(mt) || hdr.Get("Docker-Content-Digest") != d.String() ||
				hdr.Get("Content-Length") != fmt.Sprint(len(raw)) || hdr.Get("ETag") != `"`+d.String()+`"` {
				t.Fatalf("%s %s: %d %v", method, ref, code, hdr)
			}
			if method == "GET" && !bytes.Equal(body, raw) {
				t.Fatalf("GET %s: body differs", ref)
			}
		}
	}
	// As distribution does, a Docker manifest is served whatever the Accept
	// header; an OCI one by tag only to a client that lists OCI types.
	code, _, _ := get(t, "GET", m.URL+"/v2/hdr/manifests/v1",
		map[string]string{"Accept": "application/vnd.oci.image.index.v1+json"})
	if code != http.StatusOK {
		t.Fatalf("Docker manifest to an OCI-index-only client: %d", code)
	}
	oci, _ := random.Image(100, 1)
	reg.Push(t, "hdr:oci", mutate.MediaType(oci, types.OCIManifestSchema1))
	code, _, body := get(t, "GET", m.URL+"/v2/hdr/manifests/oci",
		map[string]string{"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
	if code != http.StatusNotFound || errCode(t, body) != "MANIFEST_UNKNOWN" {
		t.Fatalf("OCI manifest to a Docker-only client: %d %s", code, body)
	}
}

func TestIndexThroughMirror(t *testing.T) {
	reg := testregistry.Start(t)
	idx, err := random.Index(1000, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	reg.PushIndex(t, "multi:v1", idx)
	m := startMirror(t, reg.URL)
	code, hdr, _ := get(t, "GET", m.URL+"/v2/multi/manifests/v1",
		map[string]string{"Accept": "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json"})
	want, _ := idx.Digest()
	if code != 200 || hdr.Get("Docker-Content-Digest") != want.String() {
		t.Fatalf("index: %d %v", code, hdr)
	}
}

func TestListsAndBadInput(t *testing.T) {
	reg := testregistry.Start(t)
	for _, tag := range []string{"a", "b", "c"} {
		reg.PushRandom(t, "lists:"+tag, 100, 1)
	}
	m := startMirror(t, reg.URL)
	code, hdr, body := get(t, "GET", m.URL+"/v2/lists/tags/list?n=2", nil)
	if code != 200 || !strings.Contains(string(body), `"tags":["a","b"]`) ||
		!strings.Contains(hdr.Get("Link"), "last=b") {
		t.Fatalf("tags page 1: %d %s %q", code, body, hdr.Get("Link"))
	}
	code, _, body = get(t, "GET", m.URL+"/v2/lists/tags/list?n=2&last=b", nil)
	if code != 200 || !strings.Contains(string(body), `"tags":["c"]`) {
		t.Fatalf("tags page 2: %d %s", code, body)
	}
	m.pull(t, "lists:a")
	code, _, body = get(t, "GET", m.URL+"/v2/_catalog", nil)
	if code != 200 || string(body) != `{"repositories":["lists"]}` {
		t.Fatalf("catalog: %d %s", code, body)
	}
	code, hdr, _ = get(t, "GET", m.URL+"/v2/", nil)
	if code != 200 || hdr.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Fatalf("/v2/: %d %v", code, hdr)
	}

	missing := digest.FromString("missing").String()
	bad := []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/v2/Bad/manifests/latest", 400, "NAME_INVALID"},
		{"GET", "/v2/lists/manifests/bad:digest", 400, "DIGEST_INVALID"},
		{"GET", "/v2/lists/manifests/-tag", 400, "TAG_INVALID"},
		{"GET", "/v2/lists/blobs/sha256:short", 400, "DIGEST_INVALID"},
		{"GET", "/v2/lists/tags/list?n=-1", 400, "PAGINATION_NUMBER_INVALID"},
		{"GET", "/v2/lists/manifests/nosuchtag", 404, "MANIFEST_UNKNOWN"},
		{"GET", "/v2/lists/blobs/" + missing, 404, "BLOB_UNKNOWN"},
		{"GET", "/v2/nosuchrepo/manifests/latest", 404, ""},
		{"GET", "/nothing/here", 404, "UNSUPPORTED"},
		{"PUT", "/v2/lists/manifests/latest", 405, "UNSUPPORTED"},
		{"POST", "/v2/lists/blobs/uploads/", 405, "UNSUPPORTED"},
		{"PATCH", "/v2/lists/blobs/uploads/abc", 405, "UNSUPPORTED"},
		{"DELETE", "/v2/lists/manifests/" + missing, 405, "UNSUPPORTED"},
		{"DELETE", "/v2/lists/blobs/" + missing, 405, "UNSUPPORTED"},
	}
	for _, b := range bad {
		code, hdr, body := get(t, b.method, m.URL+b.path, nil)
		if code != b.status {
			t.Errorf("%s %s: status %d, want %d (%s)", b.method, b.path, code, b.status, body)
			continue
		}
		if c := errCode(t, body); b.code != "" && c != b.code {
			t.Errorf("%s %s: code %s, want %s", b.method, b.path, c, b.code)
		}
		if !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: content type %q", b.method, b.path, hdr.Get("Content-Type"))
		}
	}
}
