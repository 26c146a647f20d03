package upstream

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// tokenIssuer is a token endpoint issuing opaque random tokens. It requires
// Basic user:pass, or nothing when anonymous is set and no credentials come.
type tokenIssuer struct {
	user, pass string
	anonymous  bool
	expiresIn  int
	delay      time.Duration
	log        requestLog

	mu    sync.Mutex
	valid map[string]bool
}

func (ti *tokenIssuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ti.log.add(r)
	if ti.delay > 0 {
		time.Sleep(ti.delay)
	}
	u, p, ok := r.BasicAuth()
	if !(ok && u == ti.user && p == ti.pass) && !(ti.anonymous && !ok) {
		writeErrcode(w, http.StatusUnauthorized, "UNAUTHORIZED", "bad credentials")
		return
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	tok := hex.EncodeToString(b)
	ti.mu.Lock()
	if ti.valid == nil {
		ti.valid = map[string]bool{}
	}
	ti.valid[tok] = true
	ti.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token": tok, "expires_in": ti.expiresIn, "issued_at": time.Now().UTC().Format(time.RFC3339),
	})
}

func (ti *tokenIssuer) isValid(tok string) bool {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	return ti.valid[tok]
}

func (ti *tokenIssuer) revokeAll() {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.valid = nil
}

func writeErrcode(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"errors":[{"code":%q,"message":%q}]}`, code, msg)
}

// authFront is an upstream that demands bearer tokens from issuer, whose
// realm it advertises, and forwards authorised requests to next.
type authFront struct {
	srv          *httptest.Server
	issuer       *tokenIssuer
	realm        string
	next         http.Handler
	log          requestLog // every registry request, before the auth check
	rejectAll    bool       // even valid tokens get 401
	blobRedirect string     // when set, authorised blob GETs redirect here
}

func newAuthFront(t *testing.T, issuer *tokenIssuer, next http.Handler) *authFront {
	f := &authFront{issuer: issuer, next: next}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	f.realm = f.srv.URL + "/token"
	return f
}

func (f *authFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		f.issuer.ServeHTTP(w, r)
		return
	}
	f.log.add(r)
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || f.rejectAll || !f.issuer.isValid(tok) {
		ch := fmt.Sprintf(`Bearer realm=%q,service="test-registry"`, f.realm)
		if repo := repoOf(r.URL.Path); repo != "" {
			ch += fmt.Sprintf(`,scope="repository:%s:pull"`, repo)
		}
		w.Header().Set("WWW-Authenticate", ch)
		writeErrcode(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
		return
	}
	if f.blobRedirect != "" && strings.Contains(r.URL.Path, "/blobs/") {
		http.Redirect(w, r, f.blobRedirect, http.StatusTemporaryRedirect)
		return
	}
	r.Header.Del("Authorization")
	f.next.ServeHTTP(w, r)
}

// repoOf extracts the repository from /v2/<repo>/(manifests|blobs|tags)/...
func repoOf(path string) string {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return ""
	}
	for _, kind := range []string{"/manifests/", "/blobs/", "/tags/"} {
		if i := strings.LastIndex(rest, kind); i > 0 {
			return rest[:i]
		}
	}
	return ""
}

// tokenFixture is a registry behind an auth front, with one image pushed.
type tokenFixture struct {
	front  *authFront
	issuer *tokenIssuer
	img    testImage
}

func newTokenFixture(t *testing.T, issuer *tokenIssuer) tokenFixture {
	t.Helper()
	reg := newRegistryHandler(t, false)
	direct := httptest.NewServer(reg)
	t.Cleanup(direct.Close)
	p := pusher{t: t, base: direct.URL}
	img := p.image("team/app", "v1")
	p.image("team/other", "v1")
	return tokenFixture{front: newAuthFront(t, issuer, reg), issuer: issuer, img: img}
}

func TestTokenCachedAcrossRequests(t *testing.T) {
	f := newTokenFixture(t, &tokenIssuer{user: "mirror", pass: "s3cret", expiresIn: 300})
	c := newTestClient(t, f.front.srv.URL, WithCredentials("mirror", "s3cret"))
	ctx := testContext(t)
	for i := range 5 {
		if _, err := c.HeadManifest(ctx, "team/app", "v1", nil); err != nil {
			t.Fatalf("HeadManifest #%d: %v", i, err)
		}
		if _, _, err := c.GetManifest(ctx, "team/app", "v1", nil); err != nil {
			t.Fatalf("GetManifest #%d: %v", i, err)
		}
		body, _, err := c.GetBlob(ctx, "team/app", f.img.layerDigest)
		if err != nil {
			t.Fatalf("GetBlob #%d: %v", i, err)
		}
		body.Close()
	}
	if n := f.issuer.log.count(); n != 1 {
		t.Errorf("token endpoint called %d times for 15 requests, want 1", n)
	}
	if n := f.front.log.count(); n != 16 {
		t.Errorf("registry saw %d requests, want 16 (one 401, then 15 with the token)", n)
	}
	tr := f.issuer.log.all()[0]
	if u, p, ok := tr.BasicAuth(); !ok || u != "mirror" || p != "s3cret" {
		t.Errorf("token request carried no Basic credentials")
	}
	if q := tr.URL.Query(); q.Get("service") != "test-registry" || q.Get("scope") != "repository:team/app:pull" {
		t.Errorf("token request query = %v", q)
	}

	// Another repository is another scope: one more token.
	if _, err := c.HeadManifest(ctx, "team/other", "v1", nil); err != nil {
		t.Fatal(err)
	}
	if n := f.issuer.log.count(); n != 2 {
		t.Errorf("token endpoint called %d times after a second repository, want 2", n)
	}
	if q := f.issuer.log.all()[1].URL.Query(); q.Get("scope") != "repository:team/other:pull" {
		t.Errorf("second token scope = %q", q.Get("scope"))
	}
}

// fakeClock is a settable clock for token expiry.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func TestTokenExpiryRefreshesOnce(t *testing.T) {
	f := newTokenFixture(t, &tokenIssuer{user: "mirror", pass: "s3cret", expiresIn: 60})
	clock := &fakeClock{now: time.Now()}
	c := newTestClient(t, f.front.srv.URL, WithCredentials("mirror", "s3cret"), withClock(clock.Now))
	ctx := testContext(t)
	head := func() {
		t.Helper()
		for range 3 {
			if _, err := c.HeadManifest(ctx, "team/app", "v1", nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	head()
	clock.Advance(50 * time.Second) // still well within the 60s
	head()
	if n := f.issuer.log.count(); n != 1 {
		t.Fatalf("token fetches before expiry = %d, want 1", n)
	}
	clock.Advance(11 * time.Second) // past expiry
	head()
	if n := f.issuer.log.count(); n != 2 {
		t.Errorf("token fetches after expiry = %d, want 2", n)
	}
	if n := f.front.log.count(); n != 10 {
		t.Errorf("registry requests = %d, want 10: the refresh happens before sending, not after a 401", n)
	}
}

func TestTokenRejectedByUpstream(t *testing.T) {
	t.Run("revoked token is refreshed once", func(t *testing.T) {
		f := newTokenFixture(t, &tokenIssuer{user: "mirror", pass: "s3cret", expiresIn: 300})
		c := newTestClient(t, f.front.srv.URL, WithCredentials("mirror", "s3cret"))
		ctx := testContext(t)
		if _, err := c.HeadManifest(ctx, "team/app", "v1", nil); err != nil {
			t.Fatal(err)
		}
		f.issuer.revokeAll()
		for range 3 {
			if _, err := c.HeadManifest(ctx, "team/app", "v1", nil); err != nil {
				t.Fatal(err)
			}
		}
		if n := f.issuer.log.count(); n != 2 {
			t.Errorf("token fetches = %d, want 2", n)
		}
	})
	t.Run("fresh token rejected again gives the 401", func(t *testing.T) {
		f := newTokenFixture(t, &tokenIssuer{user: "mirror", pass: "s3cret", expiresIn: 300})
		f.front.rejectAll = true
		c := newTestClient(t, f.front.srv.URL, WithCredentials("mirror", "s3cret"))
		_, _, err := c.GetManifest(testContext(t), "team/app", "v1", nil)
		var e *Error
		if !errors.As(err, &e) || e.StatusCode != http.StatusUnauthorized || len(e.Errors) == 0 || e.Errors[0].Code != "UNAUTHORIZED" {
			t.Fatalf("err = %v, want a 401 *Error with UNAUTHORIZED", err)
		}
		if n, m := f.issuer.log.count(), f.front.log.count(); n != 1 || m != 2 {
			t.Errorf("token fetches = %d, registry requests = %d; want 1 and 2", n, m)
		}
	})
}

func TestTokenWrongPassword(t *testing.T) {
	f := newTokenFixture(t, &tokenIssuer{user: "mirror", pass: "s3cret", expiresIn: 300})
	c := newTestClient(t, f.front.srv.URL, WithCredentials("mirror", "hunter2"))
	_, err := c.HeadManifest(testContext(t), "team/app", "v1", nil)
	var e *Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusUnauthorized {
		t.Fatalf("err = %v, want a 401 *Error", err)
	}
	if IsUnavailable(err) || IsNotFound(err) {
		t.Errorf("a wrong password must be neither unavailable nor not found: %v", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestTokenConcurrentFetchShared(t *testing.T) {
	f := newTokenFixture(t, &tokenIssuer{user: "mirror", pass: "s3cret", expiresIn: 300, delay: 100 * time.Millisecond})
	c := newTestClient(t, f.front.srv.URL, WithCredentials("mirror", "s3cret"))
	ctx := testContext(t)
	const n = 32
	var wg sync.WaitGroup
	var failures atomic.Int32
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			if _, err := c.HeadManifest(ctx, "team/app", "v1", nil); err != nil {
				t.Error(err)
				failures.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if got := f.issuer.log.count(); got != 1 || failures.Load() != 0 {
		t.Errorf("%d concurrent requests made %d token fetches (%d failed), want 1", n, got, failures.Load())
	}
}

func TestTokenAnonymous(t *testing.T) {
	f := newTokenFixture(t, &tokenIssuer{anonymous: true, expiresIn: 300})
	c := newTestClient(t, f.front.srv.URL)
	if _, _, err := c.GetManifest(testContext(t), "team/app", "v1", nil); err != nil {
		t.Fatal(err)
	}
	if a := f.issuer.log.all()[0].Header.Get("Authorization"); a != "" {
		t.Errorf("anonymous client sent Authorization %q to the realm", a)
	}
}

// TestCredentialBoundary checks which token realms receive the Basic
// credentials. The upstream is http://127.0.0.1:port; "localhost" names the
// same machine but, as a different hostname, is a foreign host.
func TestCredentialBoundary(t *testing.T) {
	ca := newTestCA(t)
	tests := []struct {
		name      string
		tls       bool
		localhost bool // realm named localhost instead of 127.0.0.1
		authHosts func(port string) []string
		wantCreds bool
	}{
		{"foreign https realm", true, true, nil, false},
		{"foreign https realm listed by name", true, true, func(string) []string { return []string{"LOCALHOST"} }, true},
		{"foreign https realm listed with its port", true, true, func(p string) []string { return []string{"localhost:" + p} }, true},
		{"foreign https realm listed with another port", true, true, func(string) []string { return []string{"localhost:1"} }, false},
		{"foreign plain http realm, even listed", false, true, func(string) []string { return []string{"localhost"} }, false},
		{"same hostname, other port, plain http like the upstream", false, false, nil, true},
		{"same hostname over https", true, false, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			issuer := &tokenIssuer{user: "mirror", pass: "s3cret", anonymous: true, expiresIn: 300}
			f := newTokenFixture(t, issuer)
			var realmSrv *httptest.Server
			if tt.tls {
				realmSrv = ca.newTLSServer(t, issuer)
			} else {
				realmSrv = httptest.NewServer(issuer)
				t.Cleanup(realmSrv.Close)
			}
			f.front.realm = realmSrv.URL + "/token"
			if tt.localhost {
				f.front.realm = asLocalhost(f.front.realm)
			}
			opts := []Option{WithCredentials("mirror", "s3cret"), WithCAFile(ca.pemPath)}
			if tt.authHosts != nil {
				_, port, _ := strings.Cut(hostPort(t, realmSrv), ":")
				opts = append(opts, WithAuthHosts(tt.authHosts(port)...))
			}
			c := newTestClient(t, f.front.srv.URL, opts...)
			if _, err := c.HeadManifest(testContext(t), "team/app", "v1", nil); err != nil {
				t.Fatal(err)
			}
			reqs := issuer.log.all()
			if len(reqs) != 1 {
				t.Fatalf("token requests = %d, want 1", len(reqs))
			}
			_, _, gotCreds := reqs[0].BasicAuth()
			if gotCreds != tt.wantCreds || (!tt.wantCreds && reqs[0].Header.Get("Authorization") != "") {
				t.Errorf("realm %s got Authorization %q, want credentials: %v",
					f.front.realm, reqs[0].Header.Get("Authorization"), tt.wantCreds)
			}
		})
	}
}

func TestMayReceiveCredentials(t *testing.T) {
	tests := []struct {
		upstream, target string
		authHosts        []string
		want             bool
	}{
		{"https://registry-1.docker.io", "https://auth.docker.io/token", nil, true},
		{"https://docker.io", "https://auth.docker.io/token", nil, true},
		{"https://registry-1.docker.io", "http://auth.docker.io/token", nil, false},
		{"https://registry-1.docker.io", "https://registry-1.docker.io:8443/token", nil, true},
		{"https://ghcr.io", "https://ghcr.io/token", nil, true},
		{"https://quay.io", "https://auth.example.com/token", nil, false},
		{"https://quay.io", "https://auth.example.com/token", []string{"auth.example.com"}, true},
		{"https://a.github.io", "https://b.github.io/token", nil, false}, // github.io is a public suffix
		{"https://registry.corp.internal", "https://auth.corp.internal/t", nil, true},
		{"http://127.0.0.1:5000", "http://127.0.0.1:5001/token", nil, true},
		{"http://127.0.0.1:5000", "http://localhost:5000/token", nil, false},
		{"http://127.0.0.1:5000", "https://127.0.0.2/token", nil, false},
		{"http://localhost:5000", "https://auth.localhost/token", nil, false},
		{"https://10.0.0.1", "https://10.0.0.2/token", nil, false},
		{"https://registry.example.com", "ftp://registry.example.com/token", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.upstream+" to "+tt.target, func(t *testing.T) {
			c := newTestClient(t, tt.upstream, WithAuthHosts(tt.authHosts...))
			u := mustParseURL(t, tt.target)
			if got := c.mayReceiveCredentials(u); got != tt.want {
				t.Errorf("mayReceiveCredentials = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRedirectStripsAuthorization follows blob redirects the way Docker Hub
// sends them to a CDN: the CDN must see neither token nor password, while a
// redirect back to the upstream itself keeps the token. The CDN is reached
// as "localhost" (another hostname) and as 127.0.0.1 on another port, which
// net/http alone would treat as the same host and send the header to.
func TestRedirectStripsAuthorization(t *testing.T) {
	layer := []byte("layer bytes")
	cdnLog := &requestLog{}
	cdn := httptest.NewServer(recording(cdnLog, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(layer)
	})))
	t.Cleanup(cdn.Close)
	targets := map[string]string{
		"other hostname": asLocalhost(cdn.URL) + "/blob?sig=SECRET",
		"other port":     cdn.URL + "/blob?sig=SECRET",
	}
	for name, target := range targets {
		t.Run("bearer token, "+name, func(t *testing.T) {
			f := newTokenFixture(t, &tokenIssuer{user: "mirror", pass: "s3cret", expiresIn: 300})
			f.front.blobRedirect = target
			c := newTestClient(t, f.front.srv.URL, WithCredentials("mirror", "s3cret"))
			checkBlobViaCDN(t, c, f.img.layerDigest, layer, cdnLog)
		})
		t.Run("basic credentials, "+name, func(t *testing.T) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if u, p, ok := r.BasicAuth(); !ok || u != "mirror" || p != "s3cret" {
					w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
					writeErrcode(w, http.StatusUnauthorized, "UNAUTHORIZED", "who are you")
					return
				}
				http.Redirect(w, r, target, http.StatusFound)
			}))
			t.Cleanup(up.Close)
			c := newTestClient(t, up.URL, WithCredentials("mirror", "s3cret"))
			checkBlobViaCDN(t, c, digest.FromBytes(layer), layer, cdnLog)
		})
	}
	t.Run("redirect within the upstream keeps the token", func(t *testing.T) {
		f := newTokenFixture(t, &tokenIssuer{user: "mirror", pass: "s3cret", expiresIn: 300})
		var sawToken atomic.Bool
		f.front.next = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("moved") == "" {
				http.Redirect(w, r, r.URL.Path+"?moved=1", http.StatusTemporaryRedirect)
				return
			}
			sawToken.Store(true) // the front only forwards requests with a valid token
			_, _ = w.Write(layer)
		})
		c := newTestClient(t, f.front.srv.URL, WithCredentials("mirror", "s3cret"))
		body, _, err := c.GetBlob(testContext(t), "team/app", digest.FromBytes(layer))
		if err != nil {
			t.Fatal(err)
		}
		body.Close()
		if !sawToken.Load() {
			t.Error("the redirected request lost its token")
		}
	})
}

func checkBlobViaCDN(t *testing.T, c *Client, dgst digest.Digest, want []byte, cdnLog *requestLog) {
	t.Helper()
	before := cdnLog.count()
	body, _, err := c.GetBlob(testContext(t), "team/app", dgst)
	if err != nil {
		t.Fatalf("GetBlob: %v", err)
	}
	defer body.Close()
	got := readAll(t, body)
	if string(got) != string(want) {
		t.Errorf("blob = %q, want %q", got, want)
	}
	reqs := cdnLog.all()[before:]
	if len(reqs) != 1 {
		t.Fatalf("CDN requests = %d, want 1", len(reqs))
	}
	if a := reqs[0].Header.Get("Authorization"); a != "" {
		t.Errorf("CDN received Authorization %q", a)
	}
}
