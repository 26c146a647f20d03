package proxy

import (
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/internal/testregistry"
	"github.com/ocimirror/proxy/metrics"
	"github.com/ocimirror/proxy/storage"
	"github.com/ocimirror/proxy/upstream"
)

// TestTopReposCountsPulls: a GET of a manifest answered 200 is a pull of the
// repository under its stored name, whichever way the client named the
// upstream; HEADs, misses and blobs are not pulls.
func TestTopReposCountsPulls(t *testing.T) {
	a, b := testregistry.Start(t), testregistry.Start(t)
	img := a.PushRandom(t, "team/app:v1", 100, 1)
	b.PushRandom(t, "owner/tool:v1", 100, 1)
	const hostB = "registry-b.test"
	top := metrics.NewTopRepos(0, nil)
	url := startCounting(t, a.URL, hostB, b.URL, top)
	layers, _ := img.Layers()
	layer, _ := layers[0].Digest()
	requests := []struct{ method, path string }{
		{"GET", "/v2/team/app/manifests/v1"},
		{"GET", "/v2/team/app/manifests/v1"},
		{"HEAD", "/v2/team/app/manifests/v1"},
		{"GET", "/v2/team/app/manifests/nosuchtag"},
		{"GET", "/v2/team/app/blobs/" + layer.String()},
		{"GET", "/v2/" + hostB + "/owner/tool/manifests/v1"},
		{"GET", "/v2/owner/tool/manifests/v1?ns=" + hostB},
		{"GET", "/v2/" + hostB + "/owner/tool/manifests/v1"},
	}
	for _, r := range requests {
		get(t, r.method, url+r.path, nil)
	}
	got := top.Top(time.Hour, 10)
	want := []metrics.RepoPulls{{Repo: hostB + "/owner/tool", Pulls: 3}, {Repo: "team/app", Pulls: 2}}
	if len(got) != len(want) {
		t.Fatalf("counted %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("#%d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// startCounting serves a mirror of def and of more at host, counting pulls
// in top.
func startCounting(t *testing.T, def, host, more string, top *metrics.TopRepos) string {
	t.Helper()
	store, err := storage.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	newCache := func(url string, opts ...cache.Option) *cache.Cache {
		up, err := upstream.New(url, upstream.WithRetries(0, time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		c := cache.New(store, up, append(opts, cache.WithLogger(logrus.NewEntry(log)))...)
		t.Cleanup(c.Close)
		return c
	}
	byHost := map[string]*cache.Cache{host: newCache(more, cache.WithNamespace(host))}
	srv := httptest.NewServer(New(newCache(def), WithUpstreams(byHost), WithTopRepos(top), WithLogger(logrus.NewEntry(log))))
	t.Cleanup(srv.Close)
	return srv.URL
}
