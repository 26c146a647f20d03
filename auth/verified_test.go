package auth

import (
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/ocimirror/proxy/config"
)

// TestVerifiedCredentials: accepted Basic credentials are remembered for
// verifiedTTL, so a user removed from the htpasswd file keeps access that long
// and loses it after; a wrong password is never served from the memory.
func TestVerifiedCredentials(t *testing.T) {
	path := writeHtpasswd(t, map[string]string{"alice": "alice-pw"})
	now := time.Unix(1_700_000_000, 0)
	a, err := New(config.Auth{Htpasswd: &config.Htpasswd{Realm: "r", Path: path}}, WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	try := func(pass string) int {
		req := httptest.NewRequest(http.MethodPost, "/v2/dev/app/blobs/uploads/", nil)
		req.SetBasicAuth("alice", pass)
		if _, err := a.Authorize(req, Access{Repo: "dev/app", Action: Push}); err != nil {
			return err.(*Error).Status()
		}
		return http.StatusOK
	}
	if got := try("alice-pw"); got != http.StatusOK {
		t.Fatalf("first login: %d", got)
	}
	// Remove alice; make sure the file's mtime moves so distribution reloads it.
	if err := os.WriteFile(path, []byte("bob:$2y$05$invalidinvalidinvalidinvalidinvalidinvalidinvalidinvali\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Minute)
	_ = os.Chtimes(path, future, future)
	steps := []struct {
		advance time.Duration
		pass    string
		want    int
	}{
		{time.Second, "alice-pw", http.StatusOK},           // remembered
		{0, "wrong", http.StatusUnauthorized},              // never from memory
		{verifiedTTL, "alice-pw", http.StatusUnauthorized}, // forgotten: checked again, and she is gone
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		if got := try(s.pass); got != s.want {
			t.Errorf("step %d (%s after %v): %d, want %d", i, s.pass, s.advance, got, s.want)
		}
	}
}
