package proxy

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/internal/syncbuf"
	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
	"github.com/ocimirror/proxy/upstream"
)

// mirror is a proxy under test: a real store in a temp dir, the real upstream
// client and cache, served on loopback.
type mirror struct {
	URL   string
	Host  string
	Root  string
	Store *storage.Store
	Cache *cache.Cache
}

func startMirror(t *testing.T, upstreamURL string, opts ...upstream.Option) *mirror {
	t.Helper()
	return startMirrorAt(t, t.TempDir(), upstreamURL, opts...)
}

// startMirrorAt starts a mirror whose storage root is root.
func startMirrorAt(t *testing.T, root, upstreamURL string, opts ...upstream.Option) *mirror {
	t.Helper()
	return startMirrorWith(t, root, upstreamURL, nil, opts...)
}

// startMirrorWith starts a mirror with further upstreams: host -> URL.
func startMirrorWith(t *testing.T, root, upstreamURL string, more map[string]string, opts ...upstream.Option) *mirror {
	t.Helper()
	return startMirrorIndexed(t, root, upstreamURL, more, nil, opts...)
}

// startMirrorIndexed starts a mirror whose caches record in ix (nil: none).
func startMirrorIndexed(t *testing.T, root, upstreamURL string, more map[string]string, ix *scheduler.Index, opts ...upstream.Option) *mirror {
	t.Helper()
	store, err := storage.NewFilesystem(root)
	if err != nil {
		t.Fatal(err)
	}
	return startMirrorOn(t, store, root, upstreamURL, more, ix, nil, opts...)
}

// startMirrorOn starts a mirror on store (root: its local directory, if any),
// with further cache options.
func startMirrorOn(t *testing.T, store *storage.Store, root, upstreamURL string, more map[string]string, ix *scheduler.Index, copts []cache.Option, opts ...upstream.Option) *mirror {
	t.Helper()
	m, _ := startMirrorServe(t, store, root, upstreamURL, more, ix, copts, nil, nil, opts...)
	return m
}

// startMirrorServe is startMirrorOn with front end options, served on ln
// (nil: a new loopback listener); it also returns the server.
func startMirrorServe(t *testing.T, store *storage.Store, root, upstreamURL string, more map[string]string, ix *scheduler.Index,
	copts []cache.Option, popts []Option, ln net.Listener, opts ...upstream.Option) (*mirror, *httptest.Server) {
	t.Helper()
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	logs := &syncbuf.Buffer{} // shown when the test fails: a 500's cause is only logged
	log.SetOutput(logs)
	t.Cleanup(func() {
		if t.Failed() && logs.String() != "" {
			t.Logf("mirror's warnings and errors:\n%s", logs.String())
		}
	})
	opts = append([]upstream.Option{
		upstream.WithTimeouts(2*time.Second, 2*time.Second, 2*time.Second),
		upstream.WithRetries(1, 10*time.Millisecond),
	}, opts...)
	newCache := func(url string, more ...cache.Option) *cache.Cache {
		up, err := upstream.New(url, opts...)
		if err != nil {
			t.Fatal(err)
		}
		all := append(append(more, copts...), cache.WithLogger(logrus.NewEntry(log)), cache.WithIndex(ix))
		c := cache.New(store, up, all...)
		t.Cleanup(c.Close)
		return c
	}
	c := newCache(upstreamURL)
	byHost := map[string]*cache.Cache{}
	for host, url := range more {
		byHost[host] = newCache(url, cache.WithNamespace(host))
	}
	srv := httptest.NewUnstartedServer(New(c, append([]Option{WithUpstreams(byHost), WithLogger(logrus.NewEntry(log))}, popts...)...))
	if ln != nil {
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return &mirror{URL: srv.URL, Host: strings.TrimPrefix(srv.URL, "http://"), Root: root, Store: store, Cache: c}, srv
}

func (m *mirror) ref(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(m.Host+"/"+s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// pull reads a whole image through the mirror with go-containerregistry, as crane
// does, checking every layer's digest on the way.
func (m *mirror) pull(t *testing.T, s string) v1.Image {
	t.Helper()
	return m.pullVia(t, s, remote.DefaultTransport)
}

// pullVia is pull with the transport rt, which also follows redirects to
// the storage backend.
func (m *mirror) pullVia(t *testing.T, s string, rt http.RoundTripper) v1.Image {
	t.Helper()
	img, err := remote.Image(m.ref(t, s), remote.WithTransport(rt))
	if err != nil {
		t.Fatalf("pull %s: %v", s, err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("layer: %v", err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("read layer: %v", err)
		}
		if err := rc.Close(); err != nil { // verifies the digest
			t.Fatalf("layer digest: %v", err)
		}
	}
	if _, err := img.RawConfigFile(); err != nil {
		t.Fatal(err)
	}
	return img
}

// get does one request and returns status, headers and body.
func get(t *testing.T, method, url string, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, body
}

// errCode returns the first errcode of an error body, failing if there is none.
func errCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("not an errcode body: %q", body)
	}
	return e.Errors[0].Code
}
