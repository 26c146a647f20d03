package hosted

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/internal/azuretest"
	"github.com/ocimirror/proxy/internal/gcstest"
	"github.com/ocimirror/proxy/internal/objtest"
	"github.com/ocimirror/proxy/internal/s3test"
)

// TestS3PushPull: hosted repositories on a versitygw bucket.
func TestS3PushPull(t *testing.T) { objtest.Run(t, s3test.Backend, nil, pushPullCases) }

// TestGCSPushPull: hosted repositories on a fake-gcs-server bucket.
func TestGCSPushPull(t *testing.T) { objtest.Run(t, gcstest.Backend, nil, pushPullCases) }

// TestAzurePushPull: hosted repositories on an Azurite container (over https
// for redirects: SAS URLs say https).
func TestAzurePushPull(t *testing.T) {
	objtest.Run(t, azuretest.Backend, azuretest.BackendTLS, pushPullCases)
}

// pushPullCases push and pull with blob GETs streamed, and redirected to the
// backend's signed URLs.
var pushPullCases = []objtest.Case{
	{Name: "hosted-stream", Run: func(t *testing.T, b objtest.Backend, root string) {
		testPushPull(t, b, root, false)
	}},
	{Name: "hosted-redirect", Redirect: true, Run: func(t *testing.T, b objtest.Backend, root string) {
		testPushPull(t, b, root, true)
	}},
}

// testPushPull: hosted repositories on an object store prefix: a push lands
// in the bucket under the prefix, and a pull (with blob GETs redirected to
// signed URLs, or streamed) returns the same image.
func testPushPull(t *testing.T, srv objtest.Backend, root string, redirect bool) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	b := Backend{Driver: srv.Driver(), Params: srv.Params(root), Redirect: redirect}
	rg, err := NewOn(srv.Context(context.Background()), b, WithLogger(logrus.NewEntry(l)))
	if err != nil {
		t.Fatal(err)
	}
	_, host := serve(t, rg)
	img := pushRandom(t, host, "dev/app:1")
	keys := srv.Keys(t, strings.TrimPrefix(root, "/")+"/docker/registry/v2/blobs/")
	if len(keys) != 5 { // config, 3 layers, manifest
		t.Fatalf("bucket holds %d blobs under %s, want 5: %v", len(keys), root, keys)
	}
	ref, _ := name.ParseReference(host+"/dev/app:1", name.Insecure)
	got, err := remote.Image(ref, remote.WithTransport(srv.Client().Transport))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Fatalf("pulled %s, pushed %s", d, want)
	}
	layers, _ := got.Layers()
	for _, layer := range layers {
		rc, err := layer.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatal(err)
		}
		if err := rc.Close(); err != nil { // checks the digest
			t.Fatal(err)
		}
	}
	ld, _ := layers[0].Digest()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get("http://" + host + "/v2/dev/app/blobs/" + ld.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	wantStatus := http.StatusOK
	if redirect {
		wantStatus = http.StatusTemporaryRedirect
	}
	if resp.StatusCode != wantStatus {
		t.Fatalf("blob GET: %d, want %d", resp.StatusCode, wantStatus)
	}
	repos, err := rg.Repositories(context.Background())
	if err != nil || len(repos) != 1 || repos[0] != "dev/app" {
		t.Fatalf("Repositories = %v, %v", repos, err)
	}
}
