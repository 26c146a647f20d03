package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // registry:2's driver
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestServesRegistry2Directory: a data directory written by distribution's
// registry is served as is, with the upstream gone.
func TestServesRegistry2Directory(t *testing.T) {
	root := t.TempDir()
	cfg := &configuration.Configuration{}
	cfg.Storage = configuration.Storage{"filesystem": configuration.Parameters{"rootdirectory": root}}
	cfg.Log.AccessLog.Disabled = true
	srv := httptest.NewServer(handlers.NewApp(context.Background(), cfg))
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(strings.TrimPrefix(srv.URL, "http://")+"/old/app:v1", name.Insecure)
	if err := remote.Write(ref, img, remote.WithContext(context.Background())); err != nil {
		t.Fatal(err)
	}
	srv.Close()

	m := startMirrorAt(t, root, "http://127.0.0.1:1") // nothing listens there
	want := digestOf(t, img)
	if got := digestOf(t, m.pull(t, "old/app@"+want.String())); got != want {
		t.Fatalf("by digest: %s, want %s", got, want)
	}
	if got := digestOf(t, m.pull(t, "old/app:v1")); got != want { // stale tag, upstream down
		t.Fatalf("by tag: %s, want %s", got, want)
	}
	code, _, body := get(t, "GET", m.URL+"/v2/_catalog", nil)
	if code != http.StatusOK || string(body) != `{"repositories":["old/app"]}` {
		t.Fatalf("catalog: %d %s", code, body)
	}
	code, _, body = get(t, "GET", m.URL+"/v2/old/app/tags/list", nil)
	if code != http.StatusOK || string(body) != `{"name":"old/app","tags":["v1"]}` {
		t.Fatalf("tags with upstream down: %d %s", code, body)
	}
}
