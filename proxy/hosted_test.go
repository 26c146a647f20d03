package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	"github.com/ocimirror/proxy/auth"
	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/hosted"
	"github.com/ocimirror/proxy/internal/testregistry"
	"github.com/ocimirror/proxy/storage"
	"github.com/ocimirror/proxy/upstream"
)

// front is a mirror with a hosted namespace "dev", client auth and one
// private upstream "private.test".
type front struct {
	host   string
	events <-chan hosted.Event
}

var alice = &authn.Basic{Username: "alice", Password: "wonderland"}

// startFront serves a cache of up (default) and of priv (private), and hosted
// "dev", with htpasswd auth when withAuth.
func startFront(t *testing.T, up, priv string, withAuth bool) *front {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	entry := logrus.NewEntry(log)
	store, err := storage.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	newCache := func(url string, copts ...cache.Option) *cache.Cache {
		u, err := upstream.New(url, upstream.WithRetries(0, time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		c := cache.New(store, u, append(copts, cache.WithLogger(entry))...)
		t.Cleanup(c.Close)
		return c
	}
	def, private := newCache(up), newCache(priv, cache.WithNamespace("private.test"))

	var authCfg config.Auth
	if withAuth {
		hash, _ := bcrypt.GenerateFromPassword([]byte(alice.Password), bcrypt.MinCost)
		path := filepath.Join(t.TempDir(), "htpasswd")
		if err := os.WriteFile(path, []byte(alice.Username+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		authCfg.Htpasswd = &config.Htpasswd{Realm: "mirror", Path: path}
	}
	authz, err := auth.New(authCfg, auth.WithLogger(entry))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := hosted.New(context.Background(), t.TempDir(), hosted.WithLogger(entry), hosted.WithUserFunc(auth.UserFrom))
	if err != nil {
		t.Fatal(err)
	}
	events, cancel := reg.Subscribe(10)
	t.Cleanup(func() { cancel(); _ = reg.Close() })
	hostedNS := config.Hosted{Namespaces: []string{"dev"}}
	srv := httptest.NewServer(New(def, WithLogger(entry), WithAuth(authz),
		WithUpstreams(map[string]*cache.Cache{"private.test": private}), WithPrivate(private),
		WithHosted(hostedNS.IsHosted, reg)))
	t.Cleanup(srv.Close)
	return &front{host: strings.TrimPrefix(srv.URL, "http://"), events: events}
}

func (f *front) ref(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(f.host+"/"+s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestHostedPushNeedsAuth(t *testing.T) {
	up := testregistry.Start(t)
	f := startFront(t, up.URL, up.URL, true)
	img, _ := random.Image(512, 2)

	// Anonymous: refused with a challenge a client can log in with.
	err := remote.Write(f.ref(t, "dev/app:v1"), img)
	if err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Fatalf("anonymous push: %v, want UNAUTHORIZED", err)
	}
	status, hdr, _ := get(t, http.MethodPost, "http://"+f.host+"/v2/dev/app/blobs/uploads/", nil)
	if status != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("anonymous POST: %d %q", status, hdr.Get("WWW-Authenticate"))
	}

	// Logged in: the push lands, the event names the user, anonymous pulls read it back.
	if err := remote.Write(f.ref(t, "dev/app:v1"), img, remote.WithAuth(alice)); err != nil {
		t.Fatalf("push as alice: %v", err)
	}
	select {
	case e := <-f.events:
		if e.User != "alice" || e.Repo != "dev/app" || e.Tag != "v1" {
			t.Errorf("event %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no push event")
	}
	got, err := remote.Image(f.ref(t, "dev/app:v1"))
	if err != nil {
		t.Fatalf("anonymous pull of hosted: %v", err)
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Errorf("pulled %s, pushed %s", d, want)
	}

	// containerd's ns= names an upstream: dev/app there is not the hosted one.
	status, _, body := get(t, http.MethodGet, "http://"+f.host+"/v2/dev/app/manifests/v1?ns=docker.io", nil)
	if status != http.StatusNotFound && status != http.StatusBadGateway {
		t.Errorf("ns=docker.io reached the hosted repository: %d %s", status, body)
	}

	// The cache stays read-only, even for a logged-in user.
	status, _, body = get(t, http.MethodPost, "http://"+f.host+"/v2/library/app/blobs/uploads/", nil)
	if status != http.StatusMethodNotAllowed || errCode(t, body) != "UNSUPPORTED" {
		t.Errorf("push to the cache: %d %s", status, body)
	}
}

func TestHostedWithoutAuthRefusesPushes(t *testing.T) {
	up := testregistry.Start(t)
	f := startFront(t, up.URL, up.URL, false)
	status, _, body := get(t, http.MethodPost, "http://"+f.host+"/v2/dev/app/blobs/uploads/", nil)
	if status != http.StatusUnauthorized || !strings.Contains(string(body), "auth.htpasswd") {
		t.Fatalf("push without auth configured: %d %s", status, body)
	}
}

func TestCatalogListsHostedAndCached(t *testing.T) {
	up := testregistry.Start(t)
	up.PushRandom(t, "library/alpine:3", 256, 1)
	f := startFront(t, up.URL, up.URL, true)
	img, _ := random.Image(256, 1)
	if err := remote.Write(f.ref(t, "dev/tool:1"), img, remote.WithAuth(alice)); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Image(f.ref(t, "library/alpine:3")); err != nil {
		t.Fatal(err)
	}
	repos, err := remote.Catalog(context.Background(), f.ref(t, "x").Context().Registry, remote.WithAuth(alice))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(repos, []string{"dev/tool", "library/alpine"}) {
		t.Errorf("catalog = %v", repos)
	}
}

func TestPrivateUpstreamNeedsUser(t *testing.T) {
	up, priv := testregistry.Start(t), testregistry.Start(t)
	priv.PushRandom(t, "team/secret:1", 256, 1)
	up.PushRandom(t, "library/open:1", 256, 1)
	f := startFront(t, up.URL, priv.URL, true)
	if _, err := remote.Image(f.ref(t, "library/open:1")); err != nil {
		t.Errorf("anonymous pull from the public upstream: %v", err)
	}
	if _, err := remote.Image(f.ref(t, "private.test/team/secret:1")); err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Errorf("anonymous pull from the private upstream: %v, want UNAUTHORIZED", err)
	}
	if _, err := remote.Image(f.ref(t, "private.test/team/secret:1"), remote.WithAuth(alice)); err != nil {
		t.Errorf("alice's pull from the private upstream: %v", err)
	}
}
