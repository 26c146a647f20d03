package auth

import (
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/ocimirror/proxy/config"
)

// TestCheckAdmin: a user is an admin while listed in auth.admins (when set)
// and in the htpasswd file as it is now.
func TestCheckAdmin(t *testing.T) {
	path := writeHtpasswd(t, map[string]string{"alice": "a", "bob": "b", "carol": "c"})
	listed, err := New(config.Auth{Htpasswd: &config.Htpasswd{Realm: "r", Path: path}, Admins: []string{"alice", "carol"}})
	if err != nil {
		t.Fatal(err)
	}
	anyUser, err := New(config.Auth{Htpasswd: &config.Htpasswd{Realm: "r", Path: path}})
	if err != nil {
		t.Fatal(err)
	}
	none, _ := New(config.Auth{})
	check := func(a *Authorizer, user, want string) {
		t.Helper()
		err := a.CheckAdmin(user)
		var ae *Error
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v, want an admin", user, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: %v, want %q", user, err, want)
		case want != "" && errors.As(err, &ae) && ae.Status() != http.StatusForbidden && a.ac != nil:
			t.Errorf("%s: status %d, want 403", user, ae.Status())
		}
	}
	check(listed, "alice", "")
	check(listed, "bob", "no longer in auth.admins")
	check(listed, "", "anonymous is not one")
	check(anyUser, "bob", "")
	check(anyUser, "mallory", "no longer a user of auth.htpasswd")
	check(none, "alice", "needs client auth")

	// carol leaves the file; alice stays.
	rewritten := writeHtpasswd(t, map[string]string{"alice": "a2", "bob": "b"})
	data, _ := os.ReadFile(rewritten)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	check(listed, "carol", "no longer a user of auth.htpasswd")
	check(listed, "alice", "")
	// A file distribution would refuse is a fault, not a refusal.
	if err := os.WriteFile(path, []byte("# users\nalice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var ae *Error
	if err := listed.CheckAdmin("alice"); err == nil || errors.As(err, &ae) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("malformed file: %v, want a fault naming line 2", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := listed.CheckAdmin("alice"); err == nil || errors.As(err, &ae) {
		t.Errorf("missing file: %v, want a fault", err)
	}
	if listed.TokenAuth() || none.TokenAuth() {
		t.Error("TokenAuth without auth.token")
	}
}
