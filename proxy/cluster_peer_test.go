package proxy

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/cluster"
	"github.com/ocimirror/proxy/internal/testregistry"
)

// herdClients is how many clients the peer herd spreads over three replicas.
const herdClients = 12

// TestS3ClusterPeerHerd: a client on replica 0 starts the fill of a cold blob
// behind a throttled upstream, then more clients ask replicas 0, 1 and 2 for
// it. The upstream serves it once, every client gets exactly the blob, and
// every client of replicas 1 and 2 gets its first byte before the bucket
// holds the blob: they stream it from replica 0's fill, not from the store.
func TestS3ClusterPeerHerd(t *testing.T) {
	rs, srv, reg := startEnv(t)
	d, want := layerBytes(t, reg.PushRandom(t, "cl/peer:v1", 4<<20, 1))
	up := trickle(t, reg.URL, 64<<10, 20*time.Millisecond) // about 3s for the blob
	reps := startPeerCluster(t, 3, srv, rs, up, 2*time.Second)
	res, committed := herd(t, reps, reg, "cl/peer", digest.Digest(d))
	for _, r := range res {
		if r.err != nil {
			t.Errorf("client on replica %d: %v", r.replica, r.err)
			continue
		}
		if r.replica != 0 && !r.first.Before(committed) {
			t.Errorf("a client of replica %d got its first byte %v after the commit: it did not stream from the filling replica",
				r.replica, r.first.Sub(committed))
		}
	}
	checkBucket(t, srv, d, want)
}

// TestS3ClusterHerdTimes is TestS3ClusterPeerHerd's herd on replicas
// without peer streaming, for comparison: the clients of replicas 1 and 2
// get no byte before the commit. It asserts what the herd always asserts
// and logs the times.
func TestS3ClusterHerdTimes(t *testing.T) {
	rs, srv, reg := startEnv(t)
	d, _ := layerBytes(t, reg.PushRandom(t, "cl/nopeer:v1", 4<<20, 1))
	up := trickle(t, reg.URL, 64<<10, 20*time.Millisecond)
	var reps []*peerReplica
	for _, r := range startCluster(t, 3, srv, rs, up, 2*time.Second) {
		reps = append(reps, &peerReplica{replica: r})
	}
	for _, r := range first(herd(t, reps, reg, "cl/nopeer", digest.Digest(d))) {
		if r.err != nil {
			t.Errorf("client on replica %d: %v", r.replica, r.err)
		}
	}
}

func first[A, B any](a A, _ B) A { return a }

// herd runs the herd on reps and returns the clients' results and when the
// bucket first held the blob. It checks that the upstream served it once.
func herd(t *testing.T, reps []*peerReplica, reg *testregistry.Registry, repo string, d digest.Digest) ([]timed, time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	committed := commitTime(ctx, reps[0].Store, d)
	before := reg.Count("GET", "blobs")
	res := make([]timed, herdClients)
	var wg sync.WaitGroup
	wg.Go(func() { res[0] = timedGet(ctx, reps[0].URL, repo, d, 0) })
	waitFilling(t, reps[0], reg, before, d)
	for i := 1; i < herdClients; i++ {
		wg.Go(func() { res[i] = timedGet(ctx, reps[i%3].URL, repo, d, i%3) })
	}
	wg.Wait()
	at := <-committed
	if at.IsZero() {
		t.Fatal("the bucket never held the blob")
	}
	logTimes(t, res, at)
	if gets := reg.Count("GET", "blobs") - before; gets != 1 {
		t.Fatalf("%d upstream GETs of the blob across the cluster, want exactly 1", gets)
	}
	allDone(t, reps)
	return res, at
}

// waitFilling waits (at most 10s) until r's fill of d runs and the upstream
// was asked for it.
func waitFilling(t *testing.T, r *peerReplica, reg *testregistry.Registry, before int64, d digest.Digest) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for reg.Count("GET", "blobs") == before || !r.Cache.Filling(d) {
		if time.Now().After(deadline) {
			t.Fatal("replica 0 did not start its fill within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logTimes logs, per replica, the latest first byte and the slowest client,
// relative to the first client's start, and the commit.
func logTimes(t *testing.T, res []timed, committed time.Time) {
	t.Helper()
	start := res[0].start
	var line []string
	for rep := range 3 {
		var firstByte, done time.Duration
		for _, r := range res {
			if r.replica == rep && r.err == nil {
				firstByte, done = max(firstByte, r.first.Sub(start)), max(done, r.done.Sub(start))
			}
		}
		line = append(line, "replica "+strconv.Itoa(rep)+": last first byte "+firstByte.Round(time.Millisecond).String()+
			", slowest client "+done.Round(time.Millisecond).String())
	}
	t.Logf("%s; commit seen %v", strings.Join(line, "; "), committed.Sub(start).Round(time.Millisecond))
}

// allDone waits until no replica of reps has a fill running: a fill that
// streamed from a peer links the blob after its clients are served.
func allDone(t *testing.T, reps []*peerReplica) {
	t.Helper()
	for _, r := range reps {
		cacheDone(t, r.mirror)
	}
}

// TestS3ClusterPeerHolderDies: the replica filling a blob dies (connections
// cut, lease neither renewed nor released, fills gone) while the others'
// clients stream from it. No client gets a complete 200 of wrong bytes; the
// others' fills go on after the bytes they had once one of them took the
// lease over (one more upstream GET), a retry of any cut client succeeds,
// and the bucket holds the blob.
func TestS3ClusterPeerHolderDies(t *testing.T) {
	rs, srv, reg := startEnv(t)
	dd, want := layerBytes(t, reg.PushRandom(t, "cl/die:v1", 4<<20, 1))
	d := digest.Digest(dd)
	up := trickle(t, reg.URL, 64<<10, 40*time.Millisecond) // about 2.6s for the blob
	ttl := time.Second
	reps := startPeerCluster(t, 3, srv, rs, up, ttl)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	holder := make(chan timed, 1)
	go func() { holder <- timedGet(ctx, reps[0].URL, "cl/die", d, 0) }()
	waitFilling(t, reps[0], reg, 0, d)
	res := make([]timed, 8)
	var wg sync.WaitGroup
	for i := range res {
		wg.Go(func() { res[i] = timedGet(ctx, reps[1+i%2].URL, "cl/die", d, 1+i%2) })
	}
	time.Sleep(800 * time.Millisecond) // a third of the blob streamed
	killed := time.Now()
	reps[0].kill()
	if r := <-holder; r.err == nil {
		t.Error("the dead replica's client got a complete blob")
	}
	wg.Wait()
	for i, r := range res {
		switch {
		case r.err != nil && strings.Contains(r.err.Error(), "wrong bytes"):
			t.Fatalf("client %d: %v", i, r.err)
		case r.err != nil:
			t.Logf("client %d on replica %d cut short (%v); retrying", i, r.replica, r.err)
			if b, err := getBlob(ctx, reps[r.replica].URL, "cl/die", dd); err != nil || !bytes.Equal(b, want) {
				t.Errorf("client %d: the retry after the takeover failed: %v", i, err)
			}
		case !r.first.Before(killed):
			t.Errorf("client %d on replica %d got no byte before the kill: it was not streaming", i, r.replica)
		}
	}
	t.Logf("holder killed %v after the first client's start; the others' clients done %v after the kill (lease ttl %v)",
		killed.Sub(res[0].start).Round(time.Millisecond), time.Since(killed).Round(time.Millisecond), ttl)
	allDone(t, reps[1:])
	if gets := reg.Count("GET", "blobs"); gets != 2 {
		t.Errorf("%d upstream GETs, want 2 (the dead replica's and one takeover)", gets)
	}
	checkBucket(t, srv, dd, want)
}

// TestS3ClusterLyingPeer: the lease of a blob is held and the published peer
// URL is an httptest server that serves other bytes of the blob's length.
// The waiting replica's digest check fails: its client is cut short, nothing
// is committed, the upstream is not asked, and the liar got a peer token and
// no upstream credentials. Once the lease is free the blob is fetched right.
func TestS3ClusterLyingPeer(t *testing.T) {
	rs, srv, reg := startEnv(t)
	dd, want := layerBytes(t, reg.PushRandom(t, "cl/lie:v1", 1<<20, 1))
	d := digest.Digest(dd)
	var asked atomic.Int64
	var hdr atomic.Value
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		hdr.Store(r.Header.Clone())
		lie := bytes.Clone(want)
		lie[len(lie)/2] ^= 0xff
		w.Header().Set("Content-Length", strconv.Itoa(len(lie)))
		_, _ = w.Write(lie)
	}))
	t.Cleanup(liar.Close)
	rep := startPeerCluster(t, 1, srv, rs, reg.URL, time.Second)[0]
	other := testCoordinator(t, rs)
	held, release, err := other.Lease(context.Background(), "fill:"+dd, 2*time.Second)
	if err != nil || !held {
		t.Fatalf("lease: %v %v", held, err)
	}
	defer release()
	if err := other.Put(context.Background(), "fillpeer:"+dd, liar.URL, time.Minute); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := timedGet(ctx, rep.URL, "cl/lie", d, 0)
	if r.err == nil || strings.Contains(r.err.Error(), "wrong bytes") {
		t.Fatalf("the client of a fill from a lying peer: %v; want a transfer cut short", r.err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rep.Cache.Filling(d) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := rep.Store.StatBlob(ctx, d); err == nil {
		t.Fatal("the bucket holds the blob: the waiter committed a lying peer's bytes")
	}
	if n := reg.Count("GET", "blobs"); asked.Load() != 1 || n != 0 {
		t.Fatalf("the liar was asked %d times, the upstream %d; want 1 and 0", asked.Load(), n)
	}
	h := hdr.Load().(http.Header)
	if h.Get("Authorization") != "" || cluster.NewPeerSigner(peerSecret).Verify(dd, h.Get(cluster.PeerTokenHeader), time.Now()) != nil {
		t.Fatalf("the peer request carried Authorization %q and token %q; want none and a valid token",
			h.Get("Authorization"), h.Get(cluster.PeerTokenHeader))
	}
	release()
	if b, err := getBlob(ctx, rep.URL, "cl/lie", dd); err != nil || !bytes.Equal(b, want) {
		t.Fatalf("after the lease was freed: %v", err)
	}
}

// TestS3PeerFillAuth: the peer route answers only a valid token for the
// digest asked: none is a 401, a forged, expired or other digest's token a
// 403, each with an errcode body and no blob bytes; a valid token gets the
// blob, or a 404 for a blob neither filling nor stored.
func TestS3PeerFillAuth(t *testing.T) {
	rs, srv, reg := startEnv(t)
	dd, want := layerBytes(t, reg.PushRandom(t, "cl/auth:v1", 100_000, 1))
	rep := startPeerCluster(t, 1, srv, rs, reg.URL, time.Second)[0]
	if _, err := getBlob(context.Background(), rep.URL, "cl/auth", dd); err != nil {
		t.Fatal(err)
	}
	cacheDone(t, rep.mirror)
	s := cluster.NewPeerSigner(peerSecret)
	now := time.Now()
	other := digest.FromString("not here").String()
	for _, c := range []struct {
		name, dgst, token string
		status            int
		code              string
	}{
		{"no token", dd, "", http.StatusUnauthorized, "UNAUTHORIZED"},
		{"forged", dd, cluster.NewPeerSigner("another secret").Sign(dd, now), http.StatusForbidden, "DENIED"},
		{"expired", dd, s.Sign(dd, now.Add(-2*cluster.PeerTokenTTL)), http.StatusForbidden, "DENIED"},
		{"other digest's", dd, s.Sign(other, now), http.StatusForbidden, "DENIED"},
		{"garbage", dd, "123.zz", http.StatusForbidden, "DENIED"},
		{"valid, unknown blob", other, s.Sign(other, now), http.StatusNotFound, "BLOB_UNKNOWN"},
	} {
		hdr := map[string]string{}
		if c.token != "" {
			hdr[cluster.PeerTokenHeader] = c.token
		}
		status, _, body := get(t, http.MethodGet, rep.URL+cluster.PeerFillPath+c.dgst, hdr)
		if status != c.status || errCode(t, body) != c.code || bytes.Contains(body, want[:64]) {
			t.Errorf("%s token: %d %s, want %d %s and no blob bytes", c.name, status, body, c.status, c.code)
		}
	}
	status, _, body := get(t, http.MethodGet, rep.URL+cluster.PeerFillPath+dd, map[string]string{cluster.PeerTokenHeader: s.Sign(dd, now)})
	if status != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("valid token: %d, %d bytes; want 200 and the blob", status, len(body))
	}
	plain := startMirror(t, reg.URL)
	if status, _, _ := get(t, http.MethodGet, plain.URL+cluster.PeerFillPath+dd, map[string]string{cluster.PeerTokenHeader: s.Sign(dd, now)}); status != http.StatusNotFound {
		t.Fatalf("a replica without peer streaming answered the peer route %d, want 404", status)
	}
}
