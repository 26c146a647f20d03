package auth

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ocimirror/proxy/config"
)

// fakeRegistry serves one image under every repository name and accepts the
// start of an upload; it records the user of every upload it saw.
type fakeRegistry struct {
	img   v1.Image
	raw   []byte
	mt    string
	dg    string
	blobs map[string][]byte

	mu       sync.Mutex
	uploader []string
}

func newFakeRegistry(t *testing.T) *fakeRegistry {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRegistry{img: img, blobs: map[string][]byte{}}
	if f.raw, err = img.RawManifest(); err != nil {
		t.Fatal(err)
	}
	mt, _ := img.MediaType()
	dg, _ := img.Digest()
	f.mt, f.dg = string(mt), dg.String()
	cfgName, _ := img.ConfigName()
	cfg, _ := img.RawConfigFile()
	f.blobs[cfgName.String()] = cfg
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		f.blobs[d.String()] = b
	}
	return f
}

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/v2/":
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodPost && strings.HasSuffix(p, "/blobs/uploads/"):
		f.mu.Lock()
		f.uploader = append(f.uploader, UserFrom(r.Context()))
		f.mu.Unlock()
		w.Header().Set("Location", p+"0123")
		w.Header().Set("Docker-Upload-UUID", "0123")
		w.WriteHeader(http.StatusAccepted)
	case strings.Contains(p, "/manifests/") && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		w.Header().Set("Content-Type", f.mt)
		w.Header().Set("Docker-Content-Digest", f.dg)
		_, _ = w.Write(f.raw)
	case strings.Contains(p, "/blobs/") && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		b, ok := f.blobs[p[strings.LastIndex(p, "/")+1:]]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (f *fakeRegistry) uploaders() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.uploader...)
}

type keychain struct{ authn.Authenticator }

func (k keychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.Authenticator, nil }

// go-containerregistry's client (crane's) against the Authorizer: anonymous
// pulls work where anonymouspull allows them, whatever the auth scheme, and
// an anonymous push is refused with 401 and the message.
func TestGoContainerRegistryClient(t *testing.T) {
	path := writeHtpasswd(t, map[string]string{"alice": "alice-pw"})
	svc := newTokenService(t, testUsers, testPolicy)
	basic := func(mod func(*config.Auth)) func(t *testing.T, reg *fakeRegistry) string {
		return func(t *testing.T, reg *fakeRegistry) string {
			cfg := config.Auth{}
			if mod != nil {
				mod(&cfg)
			}
			log, _ := testLogger()
			a, err := New(cfg, WithLogger(log))
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(guard(a, testAccess, reg))
			t.Cleanup(srv.Close)
			return strings.TrimPrefix(srv.URL, "http://")
		}
	}
	htpasswd := func(c *config.Auth) { c.Htpasswd = &config.Htpasswd{Realm: "mirror", Path: path} }
	closed := func(c *config.Auth) { htpasswd(c); c.AnonymousPull = boolp(false) }
	tokens := func(t *testing.T, reg *fakeRegistry) string {
		log, _ := testLogger()
		srv, _ := tokenServer(t, svc, reg, nil, WithLogger(log))
		return strings.TrimPrefix(srv.URL, "http://")
	}
	alice := &authn.Basic{Username: "alice", Password: "alice-pw"}
	wrong := &authn.Basic{Username: "alice", Password: "guess"}
	tests := []struct {
		name       string
		server     func(t *testing.T, reg *fakeRegistry) string
		auth       authn.Authenticator
		pullStatus int    // 0: the pull works
		pushStatus int    // 0: the push check works
		pushMsg    string // in the push error
	}{
		{"no auth/anonymous", basic(nil), authn.Anonymous, 0, 401, "push to dev/app needs client auth, and this server has none: set auth.htpasswd"},
		{"htpasswd/anonymous", basic(htpasswd), authn.Anonymous, 0, 401, "push to dev/app needs a login"},
		{"htpasswd/alice", basic(htpasswd), alice, 0, 0, ""},
		{"htpasswd/wrong password", basic(htpasswd), wrong, 401, 401, "invalid user name or password"},
		{"htpasswd closed/anonymous", basic(closed), authn.Anonymous, 401, 401, "needs a login"},
		{"htpasswd closed/alice", basic(closed), alice, 0, 0, ""},
		{"token/anonymous", tokens, authn.Anonymous, 0, 401, "push to dev/app needs a login"},
		{"token/alice", tokens, alice, 0, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := newFakeRegistry(t)
			host := tc.server(t, reg)
			ref, err := name.ParseReference(host+"/dev/app:latest", name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			img, err := remote.Image(ref, remote.WithAuth(tc.auth), remote.WithContext(context.Background()))
			if err == nil {
				err = readImage(img)
			}
			checkStatus(t, "pull", err, tc.pullStatus, "")

			err = remote.CheckPushPermission(ref, keychain{tc.auth}, http.DefaultTransport)
			checkStatus(t, "push", err, tc.pushStatus, tc.pushMsg)
			if tc.pushStatus == 0 {
				if got := reg.uploaders(); len(got) != 1 || got[0] != "alice" {
					t.Errorf("the upload was started by %q, want alice", got)
				}
			} else if got := reg.uploaders(); len(got) != 0 {
				t.Errorf("a refused push reached the registry: %q", got)
			}
		})
	}
}

// readImage reads an image's config and layers, as a pull does.
func readImage(img v1.Image) error {
	if _, err := img.ConfigFile(); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func checkStatus(t *testing.T, what string, err error, status int, msg string) {
	t.Helper()
	if status == 0 {
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
		return
	}
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != status {
		t.Errorf("%s: %v, want status %d", what, err, status)
		return
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("%s: %v, want a message with %q", what, err, msg)
	}
}
