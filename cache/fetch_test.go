package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
	"github.com/ocimirror/proxy/upstream"
)

// slowUpstream serves body for every blob request: the first bytes at once,
// the rest when release is closed (the test ends it at the latest). It counts
// blob requests. A real registry never stalls on command, hence httptest.
func slowUpstream(t *testing.T, body []byte, release <-chan struct{}) (*httptest.Server, *atomic.Int64) {
	var gets atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		gets.Add(1)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body[:100])
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		_, _ = w.Write(body[100:])
	}))
	t.Cleanup(srv.Close)
	return srv, &gets
}

// TestFetch: Fetch of a miss returns only once the blob is committed, linked
// and in the index, not when the upstream answered; a hit is a hit; a body that
// does not hash to its digest is an error and stores nothing.
func TestFetch(t *testing.T) {
	ctx := context.Background()
	content := bytes.Repeat([]byte("a layer "), 1000)
	want := digest.FromBytes(content)
	tests := []struct {
		name    string
		dgst    digest.Digest
		wantErr error
	}{
		{"verified", want, nil},
		{"digest mismatch", digest.FromString("other"), ErrDigestMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			srv, gets := slowUpstream(t, content, release)
			root := t.TempDir()
			store, err := storage.NewFilesystem(root)
			must(t, err)
			ix, err := scheduler.Open(filepath.Join(root, "_proxy", "scheduler.db"))
			must(t, err)
			t.Cleanup(func() { _ = ix.Close() })
			up, err := upstream.New(srv.URL, upstream.WithRetries(0, 0))
			must(t, err)
			quiet := logrus.New()
			quiet.SetOutput(io.Discard)
			c := New(store, up, WithIndex(ix), WithLogger(logrus.NewEntry(quiet)))
			t.Cleanup(c.Close)

			type result struct {
				n   int64
				src Source
				err error
			}
			done := make(chan result, 1)
			go func() {
				n, src, err := c.Fetch(ctx, "team/app", tt.dgst)
				done <- result{n, src, err}
			}()
			select {
			case r := <-done:
				t.Fatalf("Fetch returned %+v while the body was still arriving", r)
			case <-time.After(100 * time.Millisecond):
			}
			close(release)
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Fetch did not return 10s after the body was complete")
			}
			_, statErr := store.StatBlob(ctx, tt.dgst)
			_, indexed := ix.Get(scheduler.Key{Kind: scheduler.KindBlob, Repo: "team/app", Digest: tt.dgst})
			linked := store.HasLayer(ctx, "team/app", tt.dgst)
			if tt.wantErr != nil {
				if !errors.Is(r.err, tt.wantErr) || statErr == nil || indexed || linked {
					t.Fatalf("Fetch = %+v; stored: %v, indexed %v, linked %v; want %v and nothing stored", r, statErr, indexed, linked, tt.wantErr)
				}
				return
			}
			if r.err != nil || r.n != int64(len(content)) || r.src != Miss || statErr != nil || !indexed || !linked {
				t.Fatalf("Fetch = %+v; stored: %v, indexed %v, linked %v; want a miss, stored, indexed and linked", r, statErr, indexed, linked)
			}
			if n, src, err := c.Fetch(ctx, "team/app", tt.dgst); err != nil || n != int64(len(content)) || src != Hit || gets.Load() != 1 {
				t.Fatalf("second Fetch = %d %s %v after %d upstream GETs; want a hit", n, src, err, gets.Load())
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
