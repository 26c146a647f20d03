//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/internal/redistest"
	"github.com/ocimirror/proxy/internal/s3test"
	"github.com/ocimirror/proxy/internal/slowread"
	"github.com/ocimirror/proxy/internal/testregistry"
)

// Z of TestS3ClusterServing: zSize bytes, of which the client reads zSlow
// over zSlowFor (twice the TTL), then the rest at once, so that the replica's
// response ends when the client's read does.
const (
	zSize    = 16 << 20
	zSlow    = 8 << 20
	zSlowFor = 2 * clusterTTL
	zBound   = 30 * time.Second // from the read's end to Z's deletion: the evictor backs off while Z is in use
)

// TestS3ClusterServing: two replicas on one bucket and one Redis, TTL 3s; A
// holds the evict lease. A slow client reads the layer Z through B for twice
// the TTL: Z stays in the bucket the whole read (A's passes find it served
// by B through Redis), and A deletes it within zBound after the read ended.
func TestS3ClusterServing(t *testing.T) {
	rs := redistest.Start(t)
	srv := s3test.Start(t)
	reg := testregistry.Start(t)
	z := reg.PushLayer(t, "cl/z:v1", bytes.Repeat([]byte("z layer "), zSize/8))
	cfg := func() string { return clusterConfig(t, srv, rs, reg.URL, clusterTTL) }
	a := startNode(t, "a", cfg())
	evictLeaseHeld(t, rs) // A's: it is alone
	b := startNode(t, "b", cfg())
	b.pull(t, "cl/z:v1") // cold: B fills Z; the slow read is a hit
	waitLimit(t, 10*time.Second, "Z in the bucket", func() bool { return a.stored(z) })

	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- slowGet(context.Background(), "http://"+b.host+"/v2/cl/z/blobs/"+z.String(), z) }()
	var readErr error
	for read := true; read; time.Sleep(100 * time.Millisecond) {
		select {
		case readErr = <-done:
			read = false
		default:
		}
		if !a.stored(z) {
			t.Fatalf("Z deleted %v after its slow read through B began, while it went on (TTL %v)", time.Since(start), clusterTTL)
		}
	}
	ended := time.Now()
	if readErr != nil {
		t.Fatalf("the slow read of Z: %v", readErr)
	}
	t.Logf("the slow read of Z through B took %v (TTL %v); Z stayed", ended.Sub(start).Round(time.Millisecond), clusterTTL)
	took := waitLimit(t, zBound, "Z deleted after its read ended", func() bool { return !a.stored(z) })
	t.Logf("Z deleted %v after its read ended", took.Round(time.Millisecond))
	if a.deleted(t) == 0 || b.deleted(t) != 0 {
		t.Fatalf("deletions A %d, B %d; want A's alone", a.deleted(t), b.deleted(t))
	}
}

// slowGet reads the blob at url through a small receive window: zSlow bytes
// over zSlowFor, then the rest at once, and checks its digest.
func slowGet(ctx context.Context, url string, want digest.Digest) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := slowread.Client().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", want, resp.Status)
	}
	v := want.Verifier()
	chunk := int64(64 << 10)
	pause := zSlowFor / time.Duration(zSlow/chunk)
	for range zSlow / chunk {
		if _, err := io.CopyN(v, resp.Body, chunk); err != nil {
			return fmt.Errorf("GET %s: slow part: %w", want, err)
		}
		time.Sleep(pause)
	}
	if _, err := io.Copy(v, resp.Body); err != nil {
		return fmt.Errorf("GET %s: rest: %w", want, err)
	}
	if !v.Verified() {
		return fmt.Errorf("GET %s: the body does not hash to its digest", want)
	}
	return nil
}
