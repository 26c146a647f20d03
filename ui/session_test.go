package ui

import (
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/internal/testpki"
)

// TestSessionEndsWhenNoLongerAdmin: a session is checked against the
// Authorizer on every request, so a user removed from the htpasswd file or
// from auth.admins (a restart with the same http.secret) loses the console at
// once: the page says why, the cookie is deleted, forms do not reach the API.
func TestSessionEndsWhenNoLongerAdmin(t *testing.T) {
	cases := []struct {
		name   string
		change func(t *testing.T, path string) config.Auth // what the admin changes; the auth the next server has
		want   string
	}{
		{"removed from htpasswd", func(t *testing.T, path string) config.Auth {
			writeUsers(t, path, "bob", "carol")
			return config.Auth{}
		}, `&#34;alice&#34; is no longer a user of auth.htpasswd`},
		{"removed from auth.admins", func(t *testing.T, path string) config.Auth {
			return config.Auth{Htpasswd: &config.Htpasswd{Realm: "test", Path: path}, Admins: []string{"bob"}}
		}, `&#34;alice&#34; is no longer in auth.admins`},
		{"htpasswd unreadable", func(t *testing.T, path string) config.Auth {
			if err := os.WriteFile(path, []byte("not an entry\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return config.Auth{}
		}, "the server could not check that you are still an admin"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := htpasswd(t, "alice", "bob")
			cfg := config.Auth{Htpasswd: &config.Htpasswd{Realm: "test", Path: path}, Admins: []string{"alice", "bob"}}
			h := newHarnessWith(t, cfg, "same secret")
			token := h.login(t, "alice")
			kept := h.client.Jar.Cookies(mustURL(t, h.srv.URL+"/ui/"))
			for _, ck := range kept {
				ck.Path = "/ui/" // as the login set it (the jar gives name and value only)
			}
			if next := c.change(t, path); next.Htpasswd != nil { // the server restarts with the new config
				restarted := newHarnessWith(t, next, "same secret")
				restarted.client = h.client
				h.srv, h.api = restarted.srv, restarted.api
				h.logs, h.mu = restarted.logs, restarted.mu
				h.client.Jar.SetCookies(mustURL(t, h.srv.URL+"/ui/"), kept)
			}
			st, hdr, body := h.do(t, http.MethodGet, "/ui/repositories", nil)
			if st != http.StatusForbidden || !strings.Contains(body, "Your session has ended: "+c.want) {
				t.Fatalf("after the change: %d\n%s", st, body)
			}
			if ck := hdr.Get("Set-Cookie"); !strings.Contains(ck, cookieName+"=;") || !strings.Contains(ck, "Max-Age=0") {
				t.Errorf("the cookie was not deleted: %q", ck)
			}
			if strings.Contains(body, "Log out") {
				t.Error("the ended session's page shows the logged-in navigation")
			}
			if !strings.Contains(h.logText(), "session ended") {
				t.Errorf("the end was not logged:\n%s", h.logText())
			}
			// The browser deleted the cookie; one that kept it gets no further.
			st, _, _ = h.do(t, http.MethodGet, "/ui/", nil)
			if st != http.StatusSeeOther {
				t.Errorf("next visit: %d, want a redirect to the login", st)
			}
			h.client.Jar.SetCookies(mustURL(t, h.srv.URL+"/ui/"), kept)
			if st, _, _ := h.do(t, http.MethodPost, "/ui/jobs/run", url.Values{"csrf": {token}}); st != http.StatusForbidden {
				t.Errorf("a form with the kept cookie: %d, want 403", st)
			}
			for _, call := range h.api.calls {
				if strings.HasPrefix(call, "POST") {
					t.Errorf("a form of an ended session reached the API: %s", call)
				}
			}
		})
	}
}

// TestSessionKeptWhileAdmin: an unrelated change to the htpasswd file keeps
// the session.
func TestSessionKeptWhileAdmin(t *testing.T) {
	path := htpasswd(t, "alice", "bob")
	h := newHarnessWith(t, config.Auth{Htpasswd: &config.Htpasswd{Realm: "test", Path: path}}, "")
	h.login(t, "alice")
	writeUsers(t, path, "alice", "dave")
	if st, _, body := h.do(t, http.MethodGet, "/ui/repositories", nil); st != http.StatusOK {
		t.Errorf("after adding a user: %d\n%s", st, body)
	}
}

// writeUsers replaces the htpasswd file at path with users (password:
// name-pw).
func writeUsers(t *testing.T, path string, users ...string) {
	t.Helper()
	data, err := os.ReadFile(htpasswd(t, users...))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestLoginWithTokenAuth: with auth.token the login page says in words that
// the console cannot log anyone in and which config it needs, and shows no
// form; a posted form gets the same answer, not "wrong password".
func TestLoginWithTokenAuth(t *testing.T) {
	h := newHarnessWith(t, config.Auth{Token: &config.Token{Realm: "https://auth.example/token", Service: "mirror",
		Issuer: "auth.example", RootCertBundle: testpki.NewCA(t).PEMPath}}, "")
	st, _, body := h.do(t, http.MethodGet, "/ui/login", nil)
	if st != http.StatusOK || !strings.Contains(body, `role="alert" id="no-login">The console cannot log anyone in on this server: its client auth is token auth (auth.token)`) ||
		!strings.Contains(body, "configure auth.htpasswd") {
		t.Errorf("login page: %d\n%s", st, body)
	}
	if strings.Contains(body, "<form") && strings.Contains(body, `name="password"`) {
		t.Error("the login page offers a form that cannot work")
	}
	st, _, body = h.do(t, http.MethodPost, "/ui/login", url.Values{"username": {"alice"}, "password": {"pw"}})
	if st != http.StatusForbidden || !strings.Contains(body, "token auth (auth.token)") || strings.Contains(body, "Wrong user name") {
		t.Errorf("posted login: %d\n%s", st, body)
	}
	// With htpasswd the page has the form and no such message.
	_, _, body = newHarness(t).do(t, http.MethodGet, "/ui/login", nil)
	if strings.Contains(body, "auth.token") || !strings.Contains(body, `name="password"`) {
		t.Error("the htpasswd login page is wrong")
	}
}
