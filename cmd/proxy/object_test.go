package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/internal/azuretest"
	"github.com/ocimirror/proxy/internal/gcstest"
	"github.com/ocimirror/proxy/internal/objtest"
	"github.com/ocimirror/proxy/internal/s3test"
	"github.com/ocimirror/proxy/internal/syncbuf"
	"github.com/ocimirror/proxy/internal/testregistry"
)

// objConfig writes a configuration on b's bucket (prefix /cache) with the
// local state in state, and returns its path and the listen address.
func objConfig(t *testing.T, b objtest.Backend, upstreamURL, state string) (string, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	doc := fmt.Sprintf(`version: 0.1
log: {level: debug}
%shttp: {addr: %q}
proxy:
  remoteurl: %s
  statedirectory: %s
hosted: {namespaces: [dev]}
`, objtest.ProxyStorage(t, b, "/cache"), addr, upstreamURL, state)
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, addr
}

// TestServeS3: proxy serve on a versitygw bucket (see testServe).
func TestServeS3(t *testing.T) { testServe(t, s3test.Start(t)) }

// TestServeGCS: proxy serve on a fake-gcs-server bucket (see testServe).
func TestServeGCS(t *testing.T) { testServe(t, gcstest.Start(t)) }

// TestServeAzure: proxy serve on an Azurite container over http (see
// testServe).
func TestServeAzure(t *testing.T) { testServe(t, azuretest.Start(t)) }

// testServe: proxy serve on an object store configured as the storage
// section: a pull fills the bucket, the index and spool are in the state
// directory (whose lock keeps gc out while serving), gc works on the bucket
// once the server stopped, and no log line carries the secret.
func testServe(t *testing.T, srv objtest.Backend) {
	reg := testregistry.Start(t)
	img := reg.PushRandom(t, "lib/app:v1", 50_000, 2)
	state := t.TempDir()
	cfgPath, addr := objConfig(t, srv, reg.URL, state)
	cfg, err := config.Load(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	bucket := objtest.BucketParam(srv.Driver())
	if b := hostedBackend(cfg); b.Driver != srv.Driver() || b.Params["rootdirectory"] != "/cache/hosted" || b.Params[bucket] != "cache" {
		t.Fatalf("hosted backend %v", b)
	}
	logs := &syncbuf.Buffer{}
	l := logrus.New()
	l.SetOutput(logs)
	l.SetLevel(logrus.DebugLevel)
	ctx, cancel := context.WithCancel(srv.Context(context.Background()))
	done := make(chan error, 1)
	go func() { done <- runServer(ctx, cfg, logrus.NewEntry(l)) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("runServer: %v", err)
			}
		case <-time.After(40 * time.Second):
			t.Error("runServer did not return 40s after cancel")
		}
	}
	defer stop()
	waitHealthy(t, "http://"+addr)

	ref, _ := name.ParseReference(addr+"/lib/app:v1", name.Insecure)
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := got.Layers()
	for _, layer := range layers {
		rc, _ := layer.Compressed()
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatal(err)
		}
		if err := rc.Close(); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Fatalf("pulled %s, want %s", d, want)
	}
	ld, _ := layers[0].Digest()
	waitFor(t, "layer in the bucket", func() bool {
		for _, k := range srv.Keys(t, "") {
			if k == objtest.BlobKey("/cache", ld.String()) {
				return true
			}
		}
		return false
	})
	if _, err := os.Stat(filepath.Join(state, "scheduler.db")); err != nil {
		t.Fatalf("index not in the state directory: %v", err)
	}
	var stdout, stderr bytes.Buffer
	if code := gc([]string{"--dry-run", cfgPath}, &stdout, &stderr, nil); code != exitFail || !strings.Contains(stderr.String(), "in use") {
		t.Fatalf("gc while serving: exit %d, %s", code, stderr.String())
	}
	stop()

	stdout.Reset()
	stderr.Reset()
	if code := gc([]string{"--dry-run", cfgPath}, &stdout, &stderr, nil); code != exitOK {
		t.Fatalf("gc --dry-run: exit %d, %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "storage "+cfg.Storage.Describe()) || strings.Contains(stdout.String(), "cache size: 0 B") {
		t.Errorf("gc report:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	for _, out := range []string{logs.String(), stdout.String(), stderr.String()} {
		if strings.Contains(out, srv.Secret()) {
			t.Fatal("the secret appears in the output")
		}
	}
}

// waitHealthy polls /healthz with a client of its own: with AWS_CA_BUNDLE set,
// aws-sdk-go v1 replaces http.DefaultClient's transport whenever the server
// opens an s3 driver, which races with a request on that client.
func waitHealthy(t *testing.T, base string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	waitFor(t, "the server to answer /healthz", func() bool {
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting 15s for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
