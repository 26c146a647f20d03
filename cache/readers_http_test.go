//go:build linux

package cache_test

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/internal/slowread"
	"github.com/ocimirror/proxy/internal/testregistry"
	"github.com/ocimirror/proxy/proxy"
	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
	"github.com/ocimirror/proxy/upstream"
)

// hitFixture is a cache on the filesystem holding one layer of layerSize
// (stored: every read is a hit), served by the proxy's handler.
type hitFixture struct {
	c     *cache.Cache
	d     cache.Deleter
	layer digest.Digest
	url   string // the layer's GET URL
}

func newHitFixture(t testing.TB, layerSize int64) *hitFixture {
	t.Helper()
	reg := testregistry.Start(t)
	ld := reg.PushLayer(t, "team/app:v1", bytes.Repeat([]byte("layer data "), int(layerSize/11)))
	root := t.TempDir()
	store, err := storage.NewFilesystem(root)
	check(t, err)
	ix, err := scheduler.Open(filepath.Join(root, "_proxy", "scheduler.db"))
	check(t, err)
	t.Cleanup(func() { _ = ix.Close() })
	up, err := upstream.New(reg.URL, upstream.WithRetries(0, 0))
	check(t, err)
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	c := cache.New(store, up, cache.WithIndex(ix), cache.WithLogger(logrus.NewEntry(quiet)))
	t.Cleanup(c.Close)
	f := &hitFixture{c: c, d: cache.Deleter{Store: store, Caches: []*cache.Cache{c}}, layer: ld}
	_, _, err = c.Fetch(context.Background(), "team/app", f.layer)
	check(t, err)
	srv := httptest.NewServer(proxy.New(c, proxy.WithLogger(logrus.NewEntry(quiet))))
	t.Cleanup(srv.Close)
	f.url = srv.URL + "/v2/team/app/blobs/" + f.layer.String()
	return f
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// waitFree waits (5s at most) until the evictor may delete the layer.
func (f *hitFixture) waitFree(t *testing.T, why string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.d.InUse(f.layer) {
		if time.Now().After(deadline) {
			t.Fatalf("the layer is still in use 5s after %s", why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHitReadersInUse: a layer is in use to the evictor while a client reads
// it from the cache, and free again once the client read it all, or once a
// client that left early is gone.
func TestHitReadersInUse(t *testing.T) {
	f := newHitFixture(t, 8<<20) // more than the sockets hold: the handler waits for the client
	client := slowread.Client()
	if f.d.InUse(f.layer) {
		t.Fatal("a stored layer nobody reads is in use")
	}
	for _, early := range []bool{false, true} {
		resp, err := client.Get(f.url)
		check(t, err)
		t.Cleanup(func() { _ = resp.Body.Close() }) // on failure too: the server's Close waits for the handler
		if _, err := io.ReadFull(resp.Body, make([]byte, 4096)); err != nil {
			t.Fatal(err)
		}
		if !f.d.InUse(f.layer) {
			t.Fatalf("early %v: the layer is not in use while a client reads it", early)
		}
		why := "the client read it all"
		if early {
			why = "the client left"
		} else if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatal(err)
		}
		check(t, resp.Body.Close()) // unread: closes the connection
		f.waitFree(t, why)
	}
}

// BenchmarkWarmHit is a hit's open and close in the cache (a stat of the
// link, an open of the file, the index's touch, the reader count), without
// HTTP: the cost the reader count adds is BenchmarkReadersHit's share of it.
func BenchmarkWarmHit(b *testing.B) {
	f := newHitFixture(b, 1<<10)
	ctx := context.Background()
	for b.Loop() {
		blob, err := f.c.Blob(ctx, "team/app", f.layer)
		if err != nil {
			b.Fatal(err)
		}
		_ = blob.Close()
	}
}
