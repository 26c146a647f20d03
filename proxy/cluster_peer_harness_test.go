package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/redis/go-redis/v9"

	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/cluster"
	"github.com/ocimirror/proxy/internal/redistest"
	"github.com/ocimirror/proxy/internal/s3test"
	"github.com/ocimirror/proxy/internal/testregistry"
	"github.com/ocimirror/proxy/storage"
)

// peerSecret is http.secret of the peer streaming tests' replicas.
const peerSecret = "the replicas' shared http.secret"

// peerReplica is a replica of a test cluster with peer streaming: its peer
// URL is its own listener's.
type peerReplica struct {
	*replica
	srv *httptest.Server
}

// startPeerCluster starts n replicas as startCluster does, each publishing
// its URL as its peer URL and serving its fills to the others.
func startPeerCluster(t *testing.T, n int, srv *s3test.Server, rs *redistest.Server, upstreamURL string, ttl time.Duration) []*peerReplica {
	t.Helper()
	signer := cluster.NewPeerSigner(peerSecret)
	var out []*peerReplica
	for range n {
		state := t.TempDir()
		store, err := storage.NewObjectStore(context.Background(), "s3", srv.Params("/cache"), filepath.Join(state, "spool"))
		if err != nil {
			t.Fatal(err)
		}
		coord := testCoordinator(t, rs)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		peers := cache.Peers{Self: "http://" + ln.Addr().String(), Signer: signer, Client: &http.Client{Transport: &http.Transport{}}, Stall: 5 * time.Second}
		m, hs := startMirrorServe(t, store, state, upstreamURL, nil, nil,
			[]cache.Option{cache.WithCluster(coord, ttl, 30*time.Second), cache.WithPeers(peers)},
			[]Option{WithPeerFills(signer)}, ln)
		out = append(out, &peerReplica{replica: &replica{mirror: m, coord: coord}, srv: hs})
	}
	return out
}

// startEnv starts what a cluster test runs on: redis-server, versitygw and
// an upstream registry.
func startEnv(t *testing.T) (*redistest.Server, *s3test.Server, *testregistry.Registry) {
	t.Helper()
	return redistest.Start(t), s3test.Start(t), testregistry.Start(t)
}

// checkBucket fails the test unless the bucket holds exactly want at d.
func checkBucket(t *testing.T, srv *s3test.Server, d string, want []byte) {
	t.Helper()
	if !bytes.Equal(storedBytes(t, srv, d), want) {
		t.Fatal("the bucket holds other bytes than the blob")
	}
}

// testCoordinator is a Redis coordinator with the cluster tests' short
// timeouts and polls.
func testCoordinator(t *testing.T, rs *redistest.Server) *cluster.Redis {
	coord := cluster.NewRedis(redis.NewClient(&redis.Options{Addr: rs.Addr, DialTimeout: 300 * time.Millisecond,
		ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond, MaxRetries: -1}))
	coord.Poll = 50 * time.Millisecond
	t.Cleanup(func() { coord.Close() })
	return coord
}

// kill makes the replica die as a process would: its connections cut, its
// lease neither renewed nor released, its fills gone.
func (p *peerReplica) kill() {
	p.srv.CloseClientConnections()
	p.coord.Close()
	p.Cache.Close()
}

// timed is one client's GET of a blob: when its first body byte came, when
// it ended, and whether it got exactly the blob in a complete 200.
type timed struct {
	replica     int
	start       time.Time
	first, done time.Time
	err         error
}

// timedGet GETs the blob d of repo from base and checks the body hashes to d.
func timedGet(ctx context.Context, base, repo string, d digest.Digest, replica int) timed {
	r := timed{replica: replica, start: time.Now()}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/"+repo+"/blobs/"+d.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.err = err
		return r
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		r.err = fmt.Errorf("status %d: %s", resp.StatusCode, b)
		return r
	}
	h := sha256.New()
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := resp.Body.Read(buf)
		if k > 0 && n == 0 {
			r.first = time.Now()
		}
		h.Write(buf[:k])
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			r.err = fmt.Errorf("after %d bytes: %w", n, err)
			return r
		}
	}
	r.done = time.Now()
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != d.String() {
		r.err = fmt.Errorf("a complete 200 of %d bytes hashing to %s: wrong bytes", n, got)
	}
	return r
}

// commitTime polls the bucket until it holds d and returns when it first
// saw it (bounded by ctx; zero if never).
func commitTime(ctx context.Context, store *storage.Store, d digest.Digest) <-chan time.Time {
	out := make(chan time.Time, 1)
	go func() {
		defer close(out)
		for ctx.Err() == nil {
			if _, err := store.StatBlob(ctx, d); err == nil {
				out <- time.Now()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return out
}
