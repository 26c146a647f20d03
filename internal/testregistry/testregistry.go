// Package testregistry runs distribution's registry in-process, on loopback with
// in-memory storage (or a directory, WithRoot), as the real upstream of the
// proxy's tests. It counts the
// requests it serves and can put a Bearer token service in front of the registry.
package testregistry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // WithRoot
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"   // the default
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"
)

// Registry is a running upstream.
type Registry struct {
	URL  string // http://127.0.0.1:port
	Host string // 127.0.0.1:port

	srv   *httptest.Server
	app   http.Handler
	user  string
	pass  string
	root  string // filesystem storage root; "" for in-memory
	mu    sync.Mutex
	count map[string]*atomic.Int64
	toks  sync.Map // token -> struct{}
}

// Option configures a Registry.
type Option func(*Registry)

// WithTokenAuth puts a Bearer token service in front of the registry: requests
// without a valid token get a 401 challenge whose realm is /token on the same
// server, which hands out tokens for Basic user:pass.
func WithTokenAuth(user, pass string) Option {
	return func(r *Registry) { r.user, r.pass = user, pass }
}

// WithRoot stores the registry's content in dir with distribution's filesystem
// driver instead of in memory. (distribution v3.1.2's in-memory driver lists
// the tags of a repository wrongly when a tag is named like a directory of its
// storage layout: a tag "docker" makes the list 404, a tag "index" is left out.
// The conformance suite pushes a tag "index".)
func WithRoot(dir string) Option {
	return func(r *Registry) { r.root = dir }
}

// Start runs a registry until the test ends.
func Start(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	r := &Registry{count: map[string]*atomic.Int64{}}
	for _, o := range opts {
		o(r)
	}
	cfg := &configuration.Configuration{}
	cfg.Storage = configuration.Storage{"inmemory": configuration.Parameters{}}
	if r.root != "" {
		cfg.Storage = configuration.Storage{"filesystem": configuration.Parameters{"rootdirectory": r.root}}
	}
	cfg.Storage["delete"] = configuration.Parameters{"enabled": true}
	cfg.Log.Level = "panic" // its 404s are expected here, not news
	cfg.Log.AccessLog.Disabled = true
	logrus.SetLevel(logrus.PanicLevel)
	r.app = handlers.NewApp(context.Background(), cfg)
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	r.URL = r.srv.URL
	r.Host = strings.TrimPrefix(r.URL, "http://")
	return r
}

// Stop shuts the registry down: later connections are refused.
func (r *Registry) Stop() { r.srv.Close() }

// Count returns how many requests of method went to endpoint ("blobs",
// "manifests", "tags", "referrers", "token") so far.
func (r *Registry) Count(method, endpoint string) int64 {
	return r.counter(method + " " + endpoint).Load()
}

func (r *Registry) counter(key string) *atomic.Int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.count[key]
	if !ok {
		c = new(atomic.Int64)
		r.count[key] = c
	}
	return c
}

func (r *Registry) serve(w http.ResponseWriter, req *http.Request) {
	r.counter(req.Method + " " + endpoint(req.URL.Path)).Add(1)
	if r.user != "" {
		if req.URL.Path == "/token" {
			r.token(w, req)
			return
		}
		if !r.authorized(req) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+r.URL+`/token",service="testregistry"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
			return
		}
	}
	r.app.ServeHTTP(w, req)
}

func endpoint(p string) string {
	for _, e := range []string{"/blobs/uploads", "/blobs/", "/manifests/", "/tags/", "/referrers/"} {
		if strings.Contains(p, e) {
			return strings.Trim(e, "/")
		}
	}
	return strings.TrimPrefix(p, "/")
}

func (r *Registry) authorized(req *http.Request) bool {
	tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	_, valid := r.toks.Load(tok)
	return valid
}

func (r *Registry) token(w http.ResponseWriter, req *http.Request) {
	u, p, ok := req.BasicAuth()
	if !ok || u != r.user || p != r.pass {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`))
		return
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	r.toks.Store(tok, struct{}{})
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": 300})
}

// auth returns credentials for pushing to the registry.
func (r *Registry) auth() authn.Authenticator {
	if r.user == "" {
		return authn.Anonymous
	}
	return &authn.Basic{Username: r.user, Password: r.pass}
}

// Ref parses repo:tag or repo@digest on this registry.
func (r *Registry) Ref(t testing.TB, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(r.Host+"/"+s, name.Insecure)
	if err != nil {
		t.Fatalf("reference %q: %v", s, err)
	}
	return ref
}

// PushRandom pushes an image of layers random layers of layerSize bytes each as
// repo:tag and returns it.
func (r *Registry) PushRandom(t testing.TB, repoTag string, layerSize, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(layerSize, layers)
	if err != nil {
		t.Fatal(err)
	}
	r.Push(t, repoTag, img)
	return img
}

// Push pushes img as repoTag.
func (r *Registry) Push(t testing.TB, repoTag string, img v1.Image) {
	t.Helper()
	if err := remote.Write(r.Ref(t, repoTag), img, remote.WithAuth(r.auth())); err != nil {
		t.Fatalf("push %s: %v", repoTag, err)
	}
}

// PushIndex pushes idx as repoTag.
func (r *Registry) PushIndex(t testing.TB, repoTag string, idx v1.ImageIndex) {
	t.Helper()
	if err := remote.WriteIndex(r.Ref(t, repoTag), idx, remote.WithAuth(r.auth())); err != nil {
		t.Fatalf("push index %s: %v", repoTag, err)
	}
}

// Delete removes a manifest by digest (to make an upstream 404).
func (r *Registry) Delete(t testing.TB, repoAtDigest string) {
	t.Helper()
	if err := remote.Delete(r.Ref(t, repoAtDigest), remote.WithAuth(r.auth())); err != nil {
		t.Fatalf("delete %s: %v", repoAtDigest, err)
	}
}
