package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/redis/go-redis/v9"

	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/cluster"
	"github.com/ocimirror/proxy/internal/redistest"
	"github.com/ocimirror/proxy/internal/s3test"
	"github.com/ocimirror/proxy/storage"
)

// replica is one proxy of a test cluster: its own spool, cache and listener,
// the shared bucket and Redis.
type replica struct {
	*mirror
	coord *cluster.Redis
}

// startCluster starts n replicas on one bucket of srv (prefix /cache) and one
// Redis, each filling from upstreamURL.
func startCluster(t *testing.T, n int, srv *s3test.Server, rs *redistest.Server, upstreamURL string, ttl time.Duration) []*replica {
	t.Helper()
	var out []*replica
	for i := range n {
		state := t.TempDir()
		store, err := storage.NewObjectStore(context.Background(), "s3", srv.Params("/cache"), filepath.Join(state, "spool"))
		if err != nil {
			t.Fatal(err)
		}
		coord := cluster.NewRedis(redis.NewClient(&redis.Options{Addr: rs.Addr, DialTimeout: 300 * time.Millisecond,
			ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond, MaxRetries: -1}))
		coord.Poll = 50 * time.Millisecond
		t.Cleanup(func() { coord.Close() })
		m := startMirrorOn(t, store, state, upstreamURL, nil, nil,
			[]cache.Option{cache.WithCluster(coord, ttl, 30*time.Second)})
		_ = i
		out = append(out, &replica{mirror: m, coord: coord})
	}
	return out
}

// trickle is a front of the upstream registry that sends blob bodies slowly
// (chunk bytes every pause), so that a fill is still running when the test
// acts on it.
func trickle(t *testing.T, upstreamURL string, chunk int, pause time.Duration) string {
	t.Helper()
	u, _ := url.Parse(upstreamURL)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	rp.ModifyResponse = func(r *http.Response) error {
		if r.Request.Method == http.MethodGet && strings.Contains(r.Request.URL.Path, "/blobs/") {
			r.Body = &slowBody{rc: r.Body, chunk: chunk, pause: pause, ctx: r.Request.Context()}
		}
		return nil
	}
	s := httptest.NewServer(rp)
	t.Cleanup(s.Close)
	return s.URL
}

type slowBody struct {
	rc    io.ReadCloser
	chunk int
	pause time.Duration
	ctx   context.Context
}

func (s *slowBody) Read(p []byte) (int, error) {
	select {
	case <-time.After(s.pause):
	case <-s.ctx.Done():
		return 0, s.ctx.Err()
	}
	return s.rc.Read(p[:min(len(p), s.chunk)])
}

func (s *slowBody) Close() error { return s.rc.Close() }

// getBlob GETs the blob d of repo from base and returns its body.
func getBlob(ctx context.Context, base, repo, d string) ([]byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/"+repo+"/blobs/"+d, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return b, nil
}

// storedBytes reads the blob d from the bucket through a fresh store.
func storedBytes(t *testing.T, srv *s3test.Server, d string) []byte {
	t.Helper()
	store, err := storage.NewObjectStore(context.Background(), "s3", srv.Params("/cache"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := store.OpenBlob(context.Background(), digest.Digest(d))
	if err != nil {
		t.Fatalf("blob %s not in the bucket: %v", d, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestS3ClusterHerd: 32 clients spread over three replicas sharing a bucket
// and a Redis ask for one cold blob at once: the upstream serves it once and
// every client gets the right bytes.
func TestS3ClusterHerd(t *testing.T) {
	rs, srv, reg := startEnv(t)
	img := reg.PushRandom(t, "cl/app:v1", 4<<20, 1)
	d, want := layerBytes(t, img)
	up := trickle(t, reg.URL, 256<<10, 20*time.Millisecond) // about 0.3s for the blob
	rs3 := startCluster(t, 3, srv, rs, up, 2*time.Second)

	before := reg.Count("GET", "blobs")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	start := time.Now()
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := getBlob(ctx, rs3[i%3].URL, "cl/app", d)
			if err == nil && !bytes.Equal(b, want) {
				err = fmt.Errorf("client %d: %d bytes, not the blob", i, len(b))
			}
			if err != nil {
				errs <- fmt.Errorf("client %d (replica %d): %w", i, i%3, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	gets := reg.Count("GET", "blobs") - before
	t.Logf("32 clients over 3 replicas: %d upstream blob GETs, %v", gets, time.Since(start))
	if gets != 1 {
		t.Fatalf("%d upstream GETs of the blob across the cluster, want exactly 1", gets)
	}
	checkBucket(t, srv, d, want)
}

// TestS3ClusterTakeover: the replica filling a blob dies mid-fill (its Redis
// connection and its fills gone at once, so its lease is neither renewed nor
// released); the clients of the other replicas complete through a replica
// that takes the lease over when it expires, and the bucket holds the right
// bytes.
func TestS3ClusterTakeover(t *testing.T) {
	rs, srv, reg := startEnv(t)
	img := reg.PushRandom(t, "cl/take:v1", 4<<20, 1)
	d, want := layerBytes(t, img)
	up := trickle(t, reg.URL, 64<<10, 40*time.Millisecond) // about 2.6s for the blob
	ttl := time.Second
	rs3 := startCluster(t, 3, srv, rs, up, ttl)
	holder := rs3[0]

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	holderErr := make(chan error, 1)
	go func() { _, err := getBlob(ctx, holder.URL, "cl/take", d); holderErr <- err }()
	deadline := time.Now().Add(10 * time.Second)
	for reg.Count("GET", "blobs") == 0 || !holder.Cache.Filling(digest.Digest(d)) {
		if time.Now().After(deadline) {
			t.Fatal("the first replica did not start its fill within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := getBlob(ctx, rs3[1+i%2].URL, "cl/take", d)
			if err == nil && !bytes.Equal(b, want) {
				err = fmt.Errorf("%d bytes, not the blob", len(b))
			}
			if err != nil {
				errs <- fmt.Errorf("client %d (replica %d): %w", i, 1+i%2, err)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // the others are waiting on the lease now
	if n := reg.Count("GET", "blobs"); n != 1 {
		t.Fatalf("%d upstream GETs while one replica fills, want 1", n)
	}
	killed := time.Now()
	holder.coord.Close() // no renewal, no release: as if the process died
	holder.Cache.Close()
	if err := <-holderErr; err == nil {
		t.Error("the dead replica's client got a complete blob")
	}
	wg.Wait()
	took := time.Since(killed)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	gets := reg.Count("GET", "blobs")
	t.Logf("takeover: clients of the surviving replicas done %v after the kill (lease ttl %v); %d upstream GETs", took, ttl, gets)
	if gets != 2 {
		t.Errorf("%d upstream GETs, want 2 (the dead replica's and one takeover)", gets)
	}
	checkBucket(t, srv, d, want)
}

// TestS3ClusterRedisDown: with Redis stopped, a replica still serves what is
// stored and fetches a miss itself (degraded), and the pull never fails for
// want of Redis.
func TestS3ClusterRedisDown(t *testing.T) {
	rs, srv, reg := startEnv(t)
	img1 := reg.PushRandom(t, "cl/down:v1", 300_000, 1)
	img2 := reg.PushRandom(t, "cl/down:v2", 300_000, 1)
	d1, want1 := layerBytes(t, img1)
	d2, want2 := layerBytes(t, img2)
	rs2 := startCluster(t, 2, srv, rs, reg.URL, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if b, err := getBlob(ctx, rs2[0].URL, "cl/down", d1); err != nil || !bytes.Equal(b, want1) {
		t.Fatalf("cold pull with redis up: %v", err)
	}
	cacheDone(t, rs2[0].mirror)
	rs.Stop()
	gets := reg.Count("GET", "blobs")
	start := time.Now()
	if b, err := getBlob(ctx, rs2[1].URL, "cl/down", d1); err != nil || !bytes.Equal(b, want1) {
		t.Fatalf("hit with redis down: %v", err)
	}
	if n := reg.Count("GET", "blobs"); n != gets {
		t.Fatalf("a hit went upstream (%d GETs) with redis down", n-gets)
	}
	if b, err := getBlob(ctx, rs2[1].URL, "cl/down", d2); err != nil || !bytes.Equal(b, want2) {
		t.Fatalf("miss with redis down: %v", err)
	}
	t.Logf("hit and miss with redis down: %v", time.Since(start))
	if !rs2[1].coord.Degraded() {
		t.Error("the replica does not report degraded mode with redis down")
	}
	cacheDone(t, rs2[1].mirror)
	if !bytes.Equal(storedBytes(t, srv, d2), want2) {
		t.Fatal("the miss fetched in degraded mode was not stored right")
	}
}
