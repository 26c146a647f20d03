package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ocimirror/proxy/internal/testregistry"
)

// TestManyUpstreams: one mirror serves two upstreams by path host and by ns=,
// keeps equal names apart, and refuses hosts it has no upstream for.
func TestManyUpstreams(t *testing.T) {
	a, b := testregistry.Start(t), testregistry.Start(t)
	imgA := a.PushRandom(t, "app:v1", 1000, 1)
	imgB := b.PushRandom(t, "app:v1", 1000, 1)
	const hostB = "registry-b.test"
	m := startMirrorWith(t, t.TempDir(), a.URL, map[string]string{hostB: b.URL})

	if got := digestOf(t, m.pull(t, "app:v1")); got != digestOf(t, imgA) {
		t.Fatalf("default upstream served %s, want A's %s", got, digestOf(t, imgA))
	}
	if got := digestOf(t, m.pull(t, hostB+"/app:v1")); got != digestOf(t, imgB) {
		t.Fatalf("path-routed upstream served %s, want B's %s", got, digestOf(t, imgB))
	}
	code, hdr, _ := get(t, "GET", m.URL+"/v2/app/manifests/v1?ns="+hostB, nil)
	if code != 200 || hdr.Get("Docker-Content-Digest") != digestOf(t, imgB).String() {
		t.Fatalf("ns=%s: %d %s", hostB, code, hdr.Get("Docker-Content-Digest"))
	}

	// B's manifest is stored, but not for A's app: asking A for it goes to A.
	code, _, body := get(t, "GET", m.URL+"/v2/app/manifests/"+digestOf(t, imgB).String(), nil)
	if code != http.StatusNotFound {
		t.Fatalf("B's manifest served as A's app: %d %s", code, body)
	}

	before := a.Count("GET", "manifests") + a.Count("HEAD", "manifests") + b.Count("GET", "manifests") + b.Count("HEAD", "manifests")
	for _, path := range []string{"/v2/evil.example/app/manifests/v1", "/v2/app/manifests/v1?ns=evil.example", "/v2/localhost:9/app/blobs/sha256:" + strings.Repeat("a", 64)} {
		code, _, body := get(t, "GET", m.URL+path, nil)
		if code != http.StatusNotFound || errCode(t, body) != "NAME_UNKNOWN" {
			t.Errorf("%s: %d %s, want 404 NAME_UNKNOWN", path, code, body)
		}
	}
	after := a.Count("GET", "manifests") + a.Count("HEAD", "manifests") + b.Count("GET", "manifests") + b.Count("HEAD", "manifests")
	if after != before {
		t.Fatalf("requests for unknown hosts reached an upstream (%d)", after-before)
	}
	code, _, body = get(t, "GET", m.URL+"/v2/_catalog", nil)
	if code != 200 || string(body) != `{"repositories":["app","`+hostB+`/app"]}` {
		t.Fatalf("catalog: %d %s", code, body)
	}
}
