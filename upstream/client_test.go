package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func TestNew(t *testing.T) {
	tests := []struct {
		remote    string
		wantHost  string // "" means New must fail
		dockerHub bool
	}{
		{"https://registry-1.docker.io", "registry-1.docker.io", true},
		{"https://docker.io/", "registry-1.docker.io", true},
		{"https://index.docker.io", "index.docker.io", true},
		{"https://GHCR.io:443", "ghcr.io", false},
		{"http://127.0.0.1:5000", "127.0.0.1:5000", false},
		{"https://[::1]:443", "[::1]", false},
		{"https://registry.example.com:8443", "registry.example.com:8443", false},
		{"registry.example.com", "", false},
		{"ftp://registry.example.com", "", false},
		{"https://user:pass@registry.example.com", "", false},
		{"https://registry.example.com/v2", "", false},
		{"https://registry.example.com?x=1", "", false},
		{"https://", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.remote, func(t *testing.T) {
			c, err := New(tt.remote)
			if tt.wantHost == "" {
				if err == nil {
					t.Fatalf("New(%q) succeeded, want an error", tt.remote)
				}
				if strings.Contains(err.Error(), "pass") && strings.Contains(tt.remote, "pass@") {
					t.Errorf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%q): %v", tt.remote, err)
			}
			if c.Host() != tt.wantHost || c.IsDockerHub() != tt.dockerHub {
				t.Errorf("Host() = %q, IsDockerHub() = %v; want %q, %v", c.Host(), c.IsDockerHub(), tt.wantHost, tt.dockerHub)
			}
		})
	}
}

func TestNewCAFileErrors(t *testing.T) {
	if _, err := New("https://r.example.com", WithCAFile("/nonexistent/ca.pem")); err == nil {
		t.Error("missing CA file accepted")
	}
	if _, err := New("https://r.example.com", WithCAFile(writeTemp(t, "not a certificate"))); err == nil {
		t.Error("CA file without certificates accepted")
	}
}

func TestRepoName(t *testing.T) {
	hub := newTestClient(t, "https://registry-1.docker.io")
	other := newTestClient(t, "https://ghcr.io")
	tests := []struct {
		c          *Client
		name, want string
	}{
		{hub, "alpine", "library/alpine"},
		{hub, "library/alpine", "library/alpine"},
		{hub, "bitnami/redis", "bitnami/redis"},
		{other, "alpine", "alpine"},
		{other, "org/app", "org/app"},
	}
	for _, tt := range tests {
		if got := tt.c.RepoName(tt.name); got != tt.want {
			t.Errorf("%s RepoName(%q) = %q, want %q", tt.c.Host(), tt.name, got, tt.want)
		}
	}
}

func TestInvalidNamesMakeNoRequest(t *testing.T) {
	log := &requestLog{}
	srv := httptest.NewServer(recording(log, http.NotFoundHandler()))
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv.URL)
	ctx := testContext(t)
	good := digest.FromString("x")
	calls := map[string]func() error{
		"repo with ..":     func() error { _, err := c.HeadManifest(ctx, "a/../b", "v1", nil); return err },
		"upper-case repo":  func() error { _, _, err := c.GetManifest(ctx, "Team/app", "v1", nil); return err },
		"repo with query":  func() error { _, err := c.HeadBlob(ctx, "a?b", good); return err },
		"tag with slash":   func() error { _, err := c.HeadManifest(ctx, "a", "v1/x", nil); return err },
		"bad digest":       func() error { _, _, err := c.GetBlob(ctx, "a", "sha256:zz"); return err },
		"get path with ..": func() error { _, err := c.Get(ctx, "a", "../../v2/_catalog", nil, nil); return err },
		"empty get path":   func() error { _, err := c.Get(ctx, "a", "", nil, nil); return err },
	}
	for name, call := range calls {
		if err := call(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if n := log.count(); n != 0 {
		t.Errorf("invalid names made %d requests", n)
	}
}

func TestValidateRepo(t *testing.T) {
	for repo, want := range map[string]bool{
		"alpine": true, "library/alpine": true, "a/b/c": true, "my-app": true, "my--app": true,
		"my.app": true, "my_app": true, "my__app": true, "a0/b1": true,
		"": false, "/a": false, "a/": false, "a//b": false, "A": false, "-a": false, "a-": false,
		"a..b": false, "a._b": false, "a___b": false, "a-.b": false, ".": false, "..": false, "a b": false,
		strings.Repeat("a", 256): false,
	} {
		if got := validateRepo(repo) == nil; got != want {
			t.Errorf("validateRepo(%q) ok = %v, want %v", repo, got, want)
		}
	}
}

func TestErrorString(t *testing.T) {
	e := &Error{
		StatusCode: 404, Method: "GET", URL: "https://r.example.com/v2/a/manifests/v1",
		Errors: []ErrorDetail{{Code: "MANIFEST_UNKNOWN", Message: "manifest unknown"}, {Code: "NAME_UNKNOWN"}},
	}
	want := "GET https://r.example.com/v2/a/manifests/v1: 404 Not Found: MANIFEST_UNKNOWN: manifest unknown; NAME_UNKNOWN"
	if e.Error() != want {
		t.Errorf("Error() = %q, want %q", e.Error(), want)
	}
	wrapped := fmt.Errorf("get manifest a:v1: %w", e)
	if !IsNotFound(wrapped) || IsUnavailable(wrapped) {
		t.Error("IsNotFound/IsUnavailable do not see through wrapping")
	}
}

func TestIsUnavailable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&Error{StatusCode: 500}, true},
		{&Error{StatusCode: 503}, true},
		{&Error{StatusCode: 429}, true},
		{&Error{StatusCode: 404}, false},
		{&Error{StatusCode: 401}, false},
		{fmt.Errorf("x: %w", ErrStalled), true},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), true},
		{fmt.Errorf("x: %w", context.Canceled), false},
		{&url.Error{Op: "Get", URL: "u", Err: &net.OpError{Op: "dial", Err: errors.New("refused")}}, true},
		{fmt.Errorf("x: %w", io.ErrUnexpectedEOF), true},
		{ErrManifestTooLarge, false},
		{errors.New("invalid repository name"), false},
	}
	for _, tt := range tests {
		if got := IsUnavailable(tt.err); got != tt.want {
			t.Errorf("IsUnavailable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"1", time.Second}, {" 3600 ", time.Hour}, {"0", 0}, {"-5", 0}, {"soon", 0},
		{"99999999999999999", maxRetryAfter},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.v, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

func TestDecodeToken(t *testing.T) {
	start := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, body    string
		wantToken     string
		wantRefreshAt time.Time // zero: want an error
	}{
		{"token with expiry", `{"token":"t1","expires_in":300}`, "t1", start.Add(270 * time.Second)},
		{"access_token, default 60s", `{"access_token":"t2"}`, "t2", start.Add(54 * time.Second)},
		{"token preferred", `{"token":"t3","access_token":"other","expires_in":60}`, "t3", start.Add(54 * time.Second)},
		{"issued earlier shortens", `{"token":"t4","expires_in":300,"issued_at":"2024-01-01T11:59:00Z"}`, "t4", start.Add(210 * time.Second)},
		{"issued later ignored", `{"token":"t5","expires_in":300,"issued_at":"2024-01-01T12:10:00Z"}`, "t5", start.Add(270 * time.Second)},
		{"server clock far behind ignored", `{"token":"t6","expires_in":300,"issued_at":"2023-01-01T00:00:00Z"}`, "t6", start.Add(270 * time.Second)},
		{"huge expiry capped", `{"token":"t7","expires_in":1e12}`, "t7", start.Add(maxTokenLifetime - 30*time.Second)},
		{"no token", `{"expires_in":300}`, "", time.Time{}},
		{"not json", `<html>`, "", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeToken(strings.NewReader(tt.body), start)
			if tt.wantRefreshAt.IsZero() {
				if err == nil {
					t.Fatalf("decodeToken = %+v, want an error", got)
				}
				return
			}
			if err != nil || got.token != tt.wantToken || !got.refreshAt.Equal(tt.wantRefreshAt) {
				t.Errorf("decodeToken = %+v, %v; want %s refreshed at %v", got, err, tt.wantToken, tt.wantRefreshAt)
			}
		})
	}
}

// TestErrorsHideSecrets: a failing CDN redirect with a signed query, and
// credentials, must not show up in error strings.
func TestErrorsHideSecrets(t *testing.T) {
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	}))
	t.Cleanup(cdn.Close)
	deadAddr := closedAddr(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := cdn.URL
		if strings.Contains(r.URL.Path, "dead") {
			target = "http://" + deadAddr
		}
		http.Redirect(w, r, target+"/blob?X-Amz-Signature=SECRET", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(up.Close)
	c := newTestClient(t, up.URL, WithCredentials("mirror", "PASSWORD"), WithRetries(1, time.Millisecond))
	for _, repo := range []string{"live", "dead"} {
		_, _, err := c.GetBlob(testContext(t), repo, digest.FromString("x"))
		if err == nil {
			t.Fatalf("%s: no error", repo)
		}
		if s := err.Error(); strings.Contains(s, "SECRET") || strings.Contains(s, "PASSWORD") {
			t.Errorf("%s: error leaks a secret: %s", repo, s)
		}
	}
}

func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
