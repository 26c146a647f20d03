package upstream

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocimirror/proxy/internal/testpki"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

const (
	mtOCIManifest = "application/vnd.oci.image.manifest.v1+json"
	mtOCIIndex    = "application/vnd.oci.image.index.v1+json"
	mtOCIConfig   = "application/vnd.oci.image.config.v1+json"
	mtOCILayer    = "application/vnd.oci.image.layer.v1.tar+gzip"

	// htpasswdLine is user "mirror", password "s3cret" (bcrypt cost 4).
	htpasswdLine = "mirror:$2a$04$6zyog.UMkB8j6VZ8TLO.reUE3SAQcySbCqr1U9YAElyrv8cdgy3Dy\n"
)

// testLogger discards output unless the test runs verbosely.
func testLogger(t *testing.T) *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if testing.Verbose() {
		l.SetOutput(os.Stderr)
		l.SetLevel(logrus.DebugLevel)
	}
	return logrus.NewEntry(l).WithField("test", t.Name())
}

// newTestClient builds a client with fast retries and a quiet logger.
func newTestClient(t *testing.T, remote string, opts ...Option) *Client {
	t.Helper()
	base := []Option{WithLogger(testLogger(t)), WithRetries(3, 5*time.Millisecond)}
	c, err := New(remote, append(base, opts...)...)
	if err != nil {
		t.Fatalf("New(%q): %v", remote, err)
	}
	return c
}

// testContext is bounded so that no test can hang.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newRegistryHandler returns distribution's registry on in-memory storage,
// optionally behind htpasswd Basic auth.
func newRegistryHandler(t *testing.T, htpasswd bool) http.Handler {
	t.Helper()
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"inmemory": configuration.Parameters{},
			"maintenance": configuration.Parameters{"uploadpurging": map[any]any{
				"enabled": false,
			}},
		},
	}
	cfg.HTTP.Secret = "test-secret"
	cfg.Log.Level = "error"
	if htpasswd {
		path := filepath.Join(t.TempDir(), "htpasswd")
		if err := os.WriteFile(path, []byte(htpasswdLine), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "test-realm", "path": path}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return handlers.NewApp(ctx, cfg)
}

// newRegistry starts distribution's registry on a loopback test server.
func newRegistry(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(newRegistryHandler(t, false))
	t.Cleanup(srv.Close)
	return srv
}

// testImage is what pushImage put into a registry.
type testImage struct {
	repo, tag      string
	manifest       []byte
	manifestDigest digest.Digest
	index          []byte
	indexDigest    digest.Digest
	layer          []byte
	layerDigest    digest.Digest
}

// pusher writes content with plain v2 API calls.
type pusher struct {
	t       *testing.T
	base    string
	user    string
	pass    string
	headers http.Header
}

func (p pusher) do(method, rawURL, contentType string, body []byte) *http.Response {
	p.t.Helper()
	req, err := http.NewRequest(method, rawURL, bytes.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if p.user != "" {
		req.SetBasicAuth(p.user, p.pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	return resp
}

func (p pusher) blob(repo string, data []byte) digest.Digest {
	p.t.Helper()
	resp := p.do(http.MethodPost, p.base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		p.t.Fatalf("start upload: %s", resp.Status)
	}
	loc, err := url.Parse(p.base)
	if err != nil {
		p.t.Fatal(err)
	}
	loc, err = loc.Parse(resp.Header.Get("Location"))
	if err != nil {
		p.t.Fatal(err)
	}
	dgst := digest.FromBytes(data)
	q := loc.Query()
	q.Set("digest", dgst.String())
	loc.RawQuery = q.Encode()
	resp = p.do(http.MethodPut, loc.String(), "application/octet-stream", data)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		p.t.Fatalf("finish upload: %s", resp.Status)
	}
	return dgst
}

func (p pusher) manifest(repo, ref, mediaType string, body []byte) {
	p.t.Helper()
	resp := p.do(http.MethodPut, p.base+"/v2/"+repo+"/manifests/"+ref, mediaType, body)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		p.t.Fatalf("put manifest %s:%s: %s %s", repo, ref, resp.Status, msg)
	}
}

// image pushes a one-layer OCI image tagged tag, and an index over it tagged
// tag+"-index".
func (p pusher) image(repo, tag string) testImage {
	p.t.Helper()
	img := testImage{repo: repo, tag: tag, layer: randomBytes(p.t, 4096)}
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	configDigest := p.blob(repo, config)
	img.layerDigest = p.blob(repo, img.layer)
	img.manifest = mustJSON(p.t, map[string]any{
		"schemaVersion": 2,
		"mediaType":     mtOCIManifest,
		"config":        map[string]any{"mediaType": mtOCIConfig, "digest": configDigest, "size": len(config)},
		"layers":        []any{map[string]any{"mediaType": mtOCILayer, "digest": img.layerDigest, "size": len(img.layer)}},
	})
	img.manifestDigest = digest.FromBytes(img.manifest)
	p.manifest(repo, tag, mtOCIManifest, img.manifest)
	img.index = mustJSON(p.t, map[string]any{
		"schemaVersion": 2,
		"mediaType":     mtOCIIndex,
		"manifests": []any{map[string]any{
			"mediaType": mtOCIManifest, "digest": img.manifestDigest, "size": len(img.manifest),
			"platform": map[string]any{"architecture": "amd64", "os": "linux"},
		}},
	})
	img.indexDigest = digest.FromBytes(img.index)
	p.manifest(repo, tag+"-index", mtOCIIndex, img.index)
	return img
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// hostPort returns the host:port of a test server.
func hostPort(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// asLocalhost rewrites a 127.0.0.1 URL to use the name localhost, which the
// credential boundary treats as a different host.
func asLocalhost(rawURL string) string {
	return strings.Replace(rawURL, "127.0.0.1", "localhost", 1)
}

// testCA is a self-signed certificate for localhost and 127.0.0.1, written
// as PEM for WithCAFile.
type testCA struct {
	cert    tls.Certificate
	pemPath string
}

func newTestCA(t *testing.T) testCA {
	ca := testpki.NewCA(t)
	return testCA{cert: ca.Cert, pemPath: ca.PEMPath}
}

// newTLSServer starts h over TLS with the test CA's certificate.
func (ca testCA) newTLSServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// requestLog records the requests a test server saw.
type requestLog struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (l *requestLog) add(r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, r.Clone(context.Background()))
}

func (l *requestLog) all() []*http.Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*http.Request(nil), l.reqs...)
}

func (l *requestLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.reqs)
}

// recording wraps h so that every request is logged first.
func recording(log *requestLog, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		h.ServeHTTP(w, r)
	})
}

func readAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

func mustParseURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func testContextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	t.Helper()
	return context.WithTimeout(testContext(t), d)
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
