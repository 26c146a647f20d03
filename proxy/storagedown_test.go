package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage/driver"

	"github.com/ocimirror/proxy/internal/testregistry"
	"github.com/ocimirror/proxy/storage"
)

// manifestAccept is the Accept header of an OCI-aware client.
var manifestAccept = map[string]string{"Accept": "application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json"}

// startMirrorOnDriver starts a mirror on a filesystem store whose driver wrap
// wraps; it also returns the unwrapped store, to look behind the wrapper.
func startMirrorOnDriver(t *testing.T, upstreamURL string, wrap func(driver.StorageDriver) driver.StorageDriver) (*mirror, *storage.Store) {
	t.Helper()
	root := t.TempDir()
	fs, err := storage.NewFilesystem(root)
	if err != nil {
		t.Fatal(err)
	}
	store, err := storage.New(wrap(fs.Driver()), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return startMirrorOn(t, store, root, upstreamURL, nil, nil, nil), fs
}

// downDriver fails every read once down is set, as a backend that lost its
// disk or its network would.
type downDriver struct {
	driver.StorageDriver
	down *atomic.Bool
}

var errBackendDown = errors.New("backend: connection refused")

func (d downDriver) Stat(ctx context.Context, path string) (driver.FileInfo, error) {
	if d.down.Load() {
		return nil, errBackendDown
	}
	return d.StorageDriver.Stat(ctx, path)
}

func (d downDriver) GetContent(ctx context.Context, path string) ([]byte, error) {
	if d.down.Load() {
		return nil, errBackendDown
	}
	return d.StorageDriver.GetContent(ctx, path)
}

func (d downDriver) Reader(ctx context.Context, path string, off int64) (io.ReadCloser, error) {
	if d.down.Load() {
		return nil, errBackendDown
	}
	return d.StorageDriver.Reader(ctx, path, off)
}

// TestStorageDownIs503: when the storage backend fails, a pull of cached
// content is answered 503 UNAVAILABLE, a fault the client may retry, not a
// 500, and the backend's error text stays in the log.
func TestStorageDownIs503(t *testing.T) {
	reg := testregistry.Start(t)
	layer := reg.PushLayer(t, "team/app:v1", []byte("a layer the mirror caches"))
	var down atomic.Bool
	m, _ := startMirrorOnDriver(t, reg.URL, func(d driver.StorageDriver) driver.StorageDriver { return downDriver{d, &down} })
	urls := []string{
		m.URL + "/v2/team/app/blobs/" + layer.String(),
		m.URL + "/v2/team/app/manifests/v1",
	}
	for _, u := range urls {
		if code, _, body := get(t, http.MethodGet, u, manifestAccept); code != http.StatusOK {
			t.Fatalf("GET %s while the backend is up: %d %s", u, code, body)
		}
	}
	down.Store(true)
	reg.Stop() // the manifest by tag cannot fall back on the upstream either
	for _, u := range urls {
		code, _, body := get(t, http.MethodGet, u, manifestAccept)
		if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "UNAVAILABLE") {
			t.Errorf("GET %s with the backend down: %d %s, want 503 UNAVAILABLE", u, code, body)
		}
		if strings.Contains(string(body), "connection refused") {
			t.Errorf("GET %s: the backend's error reached the client: %s", u, body)
		}
	}
}

// readOnlyDriver fails every write, as a full disk or a bucket that denies
// puts would; reads work.
type readOnlyDriver struct{ driver.StorageDriver }

var errReadOnly = errors.New("backend: no space left on device")

func (readOnlyDriver) PutContent(context.Context, string, []byte) error { return errReadOnly }

func (readOnlyDriver) Writer(context.Context, string, bool) (driver.FileWriter, error) {
	return nil, errReadOnly
}

func (readOnlyDriver) Move(context.Context, string, string) error { return errReadOnly }

// TestManifestServedWhenStoreFails: a manifest that verified but cannot be
// stored is still served, by tag and by digest, and nothing points at it;
// the next pull fetches it again.
func TestManifestServedWhenStoreFails(t *testing.T) {
	reg := testregistry.Start(t)
	img := reg.PushRandom(t, "team/app:v1", 100, 1)
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	m, fs := startMirrorOnDriver(t, reg.URL, func(d driver.StorageDriver) driver.StorageDriver { return readOnlyDriver{d} })
	gets := reg.Count("GET", "manifests")
	for i, ref := range []string{"v1", want.String(), "v1"} {
		code, hdr, body := get(t, http.MethodGet, m.URL+"/v2/team/app/manifests/"+ref, manifestAccept)
		if code != http.StatusOK || hdr.Get("Docker-Content-Digest") != want.String() {
			t.Fatalf("GET %d (%s) with the store failing: %d %s %s", i, ref, code, hdr.Get("Docker-Content-Digest"), body)
		}
	}
	if n := reg.Count("GET", "manifests") - gets; n != 3 {
		t.Errorf("%d upstream manifest GETs for 3 pulls of an unstorable manifest, want 3", n)
	}
	if _, err := fs.ResolveTag(context.Background(), "team/app", "v1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("tag after failed stores: %v, want not found", err)
	}
}
