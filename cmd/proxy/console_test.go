package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/ocimirror/proxy/internal/testregistry"
)

// TestConsoleOffSwitch: with ui.disabled the console's paths are answered as
// any path that is no registry endpoint (404 with an errcode body), while
// the registry API still serves pulls.
func TestConsoleOffSwitch(t *testing.T) {
	reg := testregistry.Start(t)
	reg.PushRandom(t, "team/app:v1", 100, 1)
	for _, tc := range []struct {
		name     string
		extra    string
		disabled bool
	}{
		{"on by default", "", false},
		{"ui.disabled", "ui: {disabled: true}\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startServe(t, reg.URL, tc.extra)
			for _, p := range []string{"/ui/", "/ui/login", "/ui/static/console.css", "/ui"} {
				st, hdr, body := f.get(t, p)
				if !tc.disabled {
					if st == http.StatusNotFound {
						t.Errorf("%s: 404 with the console on", p)
					}
					continue
				}
				var e struct {
					Errors []struct{ Code, Message string }
				}
				if st != http.StatusNotFound || json.Unmarshal([]byte(body), &e) != nil || len(e.Errors) != 1 ||
					e.Errors[0].Code != "UNSUPPORTED" || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
					t.Errorf("%s: %d %s %q, want 404 with a registry error body", p, st, hdr.Get("Content-Type"), body)
				}
			}
			if st, _, _ := f.get(t, "/v2/"); st != http.StatusOK {
				t.Errorf("/v2/: %d", st)
			}
			if st, hdr, _ := f.get(t, "/v2/team/app/manifests/v1"); st != http.StatusOK || hdr.Get("Docker-Content-Digest") == "" {
				t.Errorf("pull: %d", st)
			}
		})
	}
}

// TestDashboardUpstreamHealth: the dashboard shows the health each upstream's
// client keeps: Docker Hub-style quota headers from one httptest upstream, the
// failures of another that answers 503.
func TestDashboardUpstreamHealth(t *testing.T) {
	quota := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("RateLimit-Limit", "100;w=21600")
		w.Header().Set("RateLimit-Remaining", "76;w=21600")
		http.NotFound(w, r)
	}))
	t.Cleanup(quota.Close)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	t.Cleanup(failing.Close)
	f := startServe(t, quota.URL, "upstreams: [{host: failing.test, remoteurl: "+failing.URL+"}]\n"+
		"auth: {htpasswd: {realm: test, path: {{htpasswd}}}}\n")
	for _, p := range []string{"/v2/team/app/manifests/v1", "/v2/failing.test/team/app/manifests/v1", "/v2/failing.test/team/app/manifests/v2"} {
		f.get(t, p)
	}
	f.login(t)
	st, _, body := f.get(t, "/ui/")
	if st != http.StatusOK {
		t.Fatalf("dashboard: %d", st)
	}
	text := strings.Join(strings.Fields(regexp.MustCompile(`<[^>]+>`).ReplaceAllString(body, " ")), " ")
	quotaHost, failingHost := strings.TrimPrefix(quota.URL, "http://"), strings.TrimPrefix(failing.URL, "http://")
	for _, want := range []string{
		quotaHost + " ok",
		"76 of 100 pulls left per 6h",
		failingHost + " failing The last 2 requests failed",
		"Failures in a row 2",
		"503 Service Unavailable",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the dashboard lacks %q:\n%s", want, text)
		}
	}
	if !strings.Contains(body, `<span class="badge bad">failing</span>`) || !strings.Contains(body, `aria-label="pull quota of `+quotaHost) {
		t.Error("no health badge or quota bar")
	}
}
