package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/internal/syncbuf"
)

// writeHtpasswd writes a bcrypt htpasswd file of users (name -> password).
func writeHtpasswd(t *testing.T, users map[string]string) string {
	t.Helper()
	var b strings.Builder
	for name, pass := range users {
		hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(name + ":" + string(hash) + "\n")
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// testLogger returns a logger that writes into the returned buffer.
func testLogger() (*logrus.Entry, *syncbuf.Buffer) {
	buf := &syncbuf.Buffer{}
	l := logrus.New()
	l.SetOutput(buf)
	l.SetLevel(logrus.DebugLevel)
	return logrus.NewEntry(l), buf
}

// guard serves next behind a: every request asks for access(r); refusals are
// written with WriteError, and next sees the user in the request context.
func guard(a *Authorizer, access func(*http.Request) []Access, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, err := a.Authorize(r, access(r)...)
		if err != nil {
			WriteError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithUser(r.Context(), user)))
	})
}

// echoUser answers 200 with the user name from the context.
var echoUser = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-User", UserFrom(r.Context()))
	w.WriteHeader(http.StatusOK)
})

func pull(repo string) []Access { return []Access{{Repo: repo, Action: Pull}} }

// errBody decodes a registry errcode body.
func errBody(t *testing.T, body io.Reader) (code, msg string) {
	t.Helper()
	var e struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.NewDecoder(body).Decode(&e); err != nil || len(e.Errors) != 1 {
		t.Fatalf("errcode body: %v %+v", err, e)
	}
	return e.Errors[0].Code, e.Errors[0].Message
}

func boolp(b bool) *bool { return &b }

func TestAuthorizeHtpasswd(t *testing.T) {
	path := writeHtpasswd(t, map[string]string{"alice": "alice-pw", "bob": "bob-pw"})
	hp := &config.Htpasswd{Realm: "mirror-realm", Path: path}
	configs := map[string]config.Auth{
		"none":   {},
		"anon":   {Htpasswd: hp},
		"closed": {Htpasswd: hp, AnonymousPull: boolp(false)},
		"admins": {Htpasswd: hp, Admins: []string{"alice"}},
	}
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	const challenge = `Basic realm="mirror-realm"`
	var (
		base    []Access
		push    = []Access{{Repo: "dev/app", Action: Push}, {Repo: "dev/app", Action: Pull}}
		del     = []Access{{Repo: "dev/app", Action: Delete}}
		admin   = []Access{{Action: Admin}}
		catalog = []Access{{Action: Pull}}
	)
	tests := []struct {
		name      string
		cfg       string
		authz     string // Authorization header
		access    []Access
		status    int
		user      string
		challenge string // WWW-Authenticate; "" none
		code      string
		msg       string // part of the message
	}{
		{"none/base", "none", "", base, 200, "", "", "", ""},
		{"none/pull", "none", "", pull("library/alpine"), 200, "", "", "", ""},
		{"none/pull ignores credentials", "none", basic("alice", "wrong"), pull("library/alpine"), 200, "", "", "", ""},
		{"none/catalog", "none", "", catalog, 200, "", "", "", ""},
		{"none/push", "none", "", push, 401, "", "", "UNAUTHORIZED", "push to dev/app needs client auth, and this server has none: set auth.htpasswd (realm, path) or auth.token"},
		{"none/push with credentials", "none", basic("alice", "alice-pw"), push, 401, "", "", "UNAUTHORIZED", "auth.htpasswd"},
		{"none/delete", "none", "", del, 401, "", "", "UNAUTHORIZED", "delete in dev/app needs client auth"},
		{"none/admin", "none", "", admin, 401, "", "", "UNAUTHORIZED", "the /api/v0 API needs client auth"},

		{"anon/base no credentials", "anon", "", base, 401, "", challenge, "UNAUTHORIZED", "authentication required"},
		{"anon/base good", "anon", basic("alice", "alice-pw"), base, 200, "alice", "", "", ""},
		{"anon/base bad password", "anon", basic("alice", "bob-pw"), base, 401, "", challenge, "UNAUTHORIZED", "invalid user name or password"},
		{"anon/pull no credentials", "anon", "", pull("library/alpine"), 200, "", "", "", ""},
		{"anon/catalog no credentials", "anon", "", catalog, 200, "", "", "", ""},
		{"anon/pull good", "anon", basic("bob", "bob-pw"), pull("library/alpine"), 200, "bob", "", "", ""},
		{"anon/pull bad password is no anonymous pull", "anon", basic("bob", "nope"), pull("library/alpine"), 401, "", challenge, "UNAUTHORIZED", "invalid user name or password"},
		{"anon/pull unknown user", "anon", basic("mallory", "x"), pull("library/alpine"), 401, "", challenge, "UNAUTHORIZED", ""},
		{"anon/pull empty basic credentials are none", "anon", basic("", ""), pull("library/alpine"), 200, "", "", "", ""},
		{"anon/push empty basic credentials need a login", "anon", basic("", ""), push, 401, "", challenge, "UNAUTHORIZED", "push to dev/app needs a login"},
		{"anon/pull empty user with a password is checked", "anon", basic("", "x"), pull("library/alpine"), 401, "", challenge, "UNAUTHORIZED", "invalid user name or password"},
		{"anon/pull bearer to a basic realm", "anon", "Bearer abc.def.ghi", pull("library/alpine"), 401, "", challenge, "UNAUTHORIZED", ""},
		{"anon/pull header without a scheme", "anon", "s3cr3t-raw-token", pull("library/alpine"), 401, "", challenge, "UNAUTHORIZED", ""},
		{"anon/push no credentials", "anon", "", push, 401, "", challenge, "UNAUTHORIZED", "push to dev/app needs a login: docker login mirror.test"},
		{"anon/push good", "anon", basic("alice", "alice-pw"), push, 200, "alice", "", "", ""},
		{"anon/push bad password", "anon", basic("alice", "x"), push, 401, "", challenge, "UNAUTHORIZED", ""},
		{"anon/delete no credentials", "anon", "", del, 401, "", challenge, "UNAUTHORIZED", "delete in dev/app needs a login"},
		{"anon/delete good", "anon", basic("bob", "bob-pw"), del, 200, "bob", "", "", ""},
		{"anon/admin no credentials", "anon", "", admin, 401, "", challenge, "UNAUTHORIZED", "the /api/v0 API needs a login"},
		{"anon/admin any user without auth.admins", "anon", basic("bob", "bob-pw"), admin, 200, "bob", "", "", ""},

		{"closed/base no credentials", "closed", "", base, 401, "", challenge, "UNAUTHORIZED", ""},
		{"closed/pull no credentials", "closed", "", pull("library/alpine"), 401, "", challenge, "UNAUTHORIZED", "pull from library/alpine needs a login"},
		{"closed/catalog no credentials", "closed", "", catalog, 401, "", challenge, "UNAUTHORIZED", "the catalog needs a login"},
		{"closed/pull good", "closed", basic("bob", "bob-pw"), pull("library/alpine"), 200, "bob", "", "", ""},
		{"closed/pull empty basic credentials", "closed", basic("", ""), pull("library/alpine"), 401, "", challenge, "UNAUTHORIZED", "pull from library/alpine needs a login"},
		{"closed/pull bad", "closed", basic("bob", "x"), pull("library/alpine"), 401, "", challenge, "UNAUTHORIZED", ""},

		{"admins/admin listed", "admins", basic("alice", "alice-pw"), admin, 200, "alice", "", "", ""},
		{"admins/admin not listed", "admins", basic("bob", "bob-pw"), admin, 403, "", "", "DENIED", `the /api/v0 API is for admins, and "bob" is not one`},
		{"admins/admin no credentials", "admins", "", admin, 401, "", challenge, "UNAUTHORIZED", ""},
		{"admins/admin bad password", "admins", basic("alice", "x"), admin, 401, "", challenge, "UNAUTHORIZED", ""},
		{"admins/push not listed", "admins", basic("bob", "bob-pw"), push, 200, "bob", "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log, logs := testLogger()
			a, err := New(configs[tc.cfg], WithLogger(log))
			if err != nil {
				t.Fatal(err)
			}
			srv := guard(a, func(*http.Request) []Access { return tc.access }, echoUser)
			req := httptest.NewRequest(http.MethodGet, "http://mirror.test/v2/", nil)
			req.RemoteAddr = "192.0.2.7:40000"
			if tc.authz != "" {
				req.Header.Set("Authorization", tc.authz)
			}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
			if tc.status == 200 {
				if got := rec.Header().Get("X-User"); got != tc.user {
					t.Errorf("user %q, want %q", got, tc.user)
				}
				return
			}
			code, msg := errBody(t, rec.Body)
			if code != tc.code || !strings.Contains(msg, tc.msg) {
				t.Errorf("errcode %s %q, want %s containing %q", code, msg, tc.code, tc.msg)
			}
			// Credentials never reach the log, in any form.
			if tc.authz != "" {
				fields := strings.Fields(tc.authz)
				for _, secret := range []string{fields[len(fields)-1], "alice-pw", "bob-pw", "nope"} {
					if strings.Contains(logs.String(), secret) {
						t.Errorf("log contains %q:\n%s", secret, logs)
					}
				}
			}
		})
	}
}

// Empty Basic credentials, which podman and skopeo send after a Basic
// challenge when they have none, are an anonymous request: never a failed
// login, never throttled.
func TestEmptyBasicIsAnonymous(t *testing.T) {
	path := writeHtpasswd(t, map[string]string{"alice": "alice-pw"})
	log, logs := testLogger()
	a, err := New(config.Auth{Htpasswd: &config.Htpasswd{Realm: "r", Path: path}}, WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	req := func(user, pass string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/v2/library/alpine/manifests/3", nil)
		r.RemoteAddr = "198.51.100.24:5555"
		r.SetBasicAuth(user, pass)
		return r
	}
	for i := 0; i < 2*throttleThreshold; i++ {
		if user, err := a.Authorize(req("", ""), pull("library/alpine")...); err != nil || user != "" {
			t.Fatalf("pull %d with empty Basic credentials: user %q, %v", i, user, err)
		}
	}
	if user, err := a.Authorize(req("alice", "alice-pw"), Access{Repo: "dev/app", Action: Push}); err != nil || user != "alice" {
		t.Fatalf("a login after anonymous pulls: user %q, %v", user, err)
	}
	if strings.Contains(logs.String(), "failed login") {
		t.Errorf("empty Basic credentials were logged as a failed login:\n%s", logs)
	}
}

// A failed login is logged with the user name and the client address, at
// warning level, and without the password.
func TestFailedLoginLogged(t *testing.T) {
	path := writeHtpasswd(t, map[string]string{"alice": "alice-pw"})
	log, logs := testLogger()
	a, err := New(config.Auth{Htpasswd: &config.Htpasswd{Realm: "r", Path: path}}, WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/v2/", nil)
	req.RemoteAddr = "198.51.100.23:5555"
	req.SetBasicAuth("alice", "s3cret-guess")
	if _, err := a.Authorize(req, pull("x")...); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	out := logs.String()
	for _, want := range []string{"level=warning", "failed login", "user=alice", "remote=198.51.100.23"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"s3cret-guess", base64.StdEncoding.EncodeToString([]byte("alice:s3cret-guess"))} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains the credential %q:\n%s", secret, out)
		}
	}
}

// The error Authorize returns is usable by a writer that knows only errcode
// values, and by one that asks for status and headers.
func TestErrorShape(t *testing.T) {
	path := writeHtpasswd(t, map[string]string{"alice": "alice-pw"})
	a, err := New(config.Auth{Htpasswd: &config.Htpasswd{Realm: "r", Path: path}})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodHead, "/v2/dev/app/manifests/latest", nil)
	_, err = a.Authorize(req, Access{Repo: "dev/app", Action: Push})
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %T %v is no *Error", err, err)
	}
	if ae.Status() != http.StatusUnauthorized || ae.Header().Get("WWW-Authenticate") != `Basic realm="r"` ||
		ae.ErrCode().Code != errcode.ErrorCodeUnauthorized {
		t.Errorf("status %d header %v code %v", ae.Status(), ae.Header(), ae.ErrCode())
	}
	var ee errcode.Error
	if !errors.As(err, &ee) || ee.Code != errcode.ErrorCodeUnauthorized {
		t.Errorf("errors.As errcode.Error: %v", ee)
	}
	rec := httptest.NewRecorder()
	WriteError(rec, req, err)
	if rec.Code != 401 || rec.Body.Len() != 0 || rec.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("HEAD answer: %d, body %q, headers %v", rec.Code, rec.Body, rec.Header())
	}
	// Anything else is a 500 that tells nothing.
	rec = httptest.NewRecorder()
	WriteError(rec, httptest.NewRequest(http.MethodGet, "/", nil), errors.New("open /etc/secret: permission denied"))
	if code, msg := errBody(t, rec.Body); rec.Code != 500 || code != "UNKNOWN" || strings.Contains(msg, "/etc") {
		t.Errorf("500 answer: %d %s %q", rec.Code, code, msg)
	}
}

// Programming errors and a broken htpasswd file are server faults, not refusals.
func TestAuthorizeFaults(t *testing.T) {
	path := writeHtpasswd(t, map[string]string{"alice": "alice-pw"})
	a, err := New(config.Auth{Htpasswd: &config.Htpasswd{Realm: "r", Path: path}})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Access{{Action: Push}, {Action: Delete}, {Repo: "x", Action: "fly"}} {
		if _, err := a.Authorize(httptest.NewRequest("GET", "/v2/", nil), bad); err == nil || errors.As(err, new(*Error)) {
			t.Errorf("%+v: %v, want a plain error", bad, err)
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/v2/", nil)
	req.SetBasicAuth("alice", "alice-pw")
	if _, err := a.Authorize(req); err == nil || errors.As(err, new(*Error)) {
		t.Errorf("htpasswd file gone: %v, want a plain error", err)
	}
}

func TestNew(t *testing.T) {
	path := writeHtpasswd(t, map[string]string{"alice": "alice-pw"})
	missing := filepath.Join(t.TempDir(), "nope", "htpasswd")
	for name, cfg := range map[string]config.Auth{
		"both":             {Htpasswd: &config.Htpasswd{Realm: "r", Path: path}, Token: &config.Token{}},
		"missing htpasswd": {Htpasswd: &config.Htpasswd{Realm: "r", Path: missing}},
		"admins alone":     {Admins: []string{"alice"}},
		"token no keys":    {Token: &config.Token{Realm: "https://auth.test/token", Service: "s", Issuer: "i"}},
		"token bad alg": {Token: &config.Token{Realm: "https://auth.test/token", Service: "s", Issuer: "i",
			RootCertBundle: writeCA(t), SigningAlgorithms: []string{"none"}}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	// distribution's controller would have created the missing file with a
	// generated user.
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("missing htpasswd file was created: %v", err)
	}
}

func TestUserContext(t *testing.T) {
	ctx := context.Background()
	if got := UserFrom(ctx); got != "" {
		t.Errorf("UserFrom(empty) = %q", got)
	}
	if got := UserFrom(WithUser(ctx, "alice")); got != "alice" {
		t.Errorf("UserFrom = %q, want alice", got)
	}
}
