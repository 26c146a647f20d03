//go:build e2e

package e2e

// The cluster end to end (issue 9): three processes of the built binary on
// one bucket of a real S3 server (versitygw, posix backend in a temp dir) and
// one redis-server, filling from a distribution registry through a counting,
// throttled front (clusterfront_test.go). The in-process versions of these
// checks are proxy/cluster_test.go's TestS3ClusterHerd, TestS3ClusterTakeover
// and TestS3ClusterRedisDown, and cmd/proxy's TestS3ClusterEviction; these run the real
// processes, over loopback, with real kills.

import (
	"context"
	"errors"
	"path"
	"testing"
	"time"

	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/internal/objtest"
	"github.com/ocimirror/proxy/internal/redistest"
	"github.com/ocimirror/proxy/internal/s3test"
)

const (
	herdClients = 32
	herdSize    = 256 << 20
	killSize    = 64 << 20
	killRate    = 16 << 20 // bytes/s: the fill that is killed lasts 4 s
	killClients = 9        // three on each replica
	smallSize   = 8 << 20
	smallRate   = 4 << 20 // bytes/s: a cold miss with redis down lasts 2 s
	// probeWait is more than the coordinator's probe interval (1 s in
	// cluster/redis.go), during which a replica that found Redis down does
	// not try it again.
	probeWait = 1500 * time.Millisecond
)

// clusterEnv is the running cluster and the blobs of its upstream.
type clusterEnv struct {
	top   *testing.T // owns the processes: a replica restarted in a phase outlives it
	bin   string     // the built proxy, for phases that start replicas of their own
	reg   string     // the registry's URL, for phases that push blobs of their own
	srv   *s3test.Server
	rs    *redistest.Server
	front *front
	reps  []*replica
	bases []string // the replicas' URLs, for round-robin clients

	single, herd, kill, down, back blob
}

// TestCluster: the herd, the kill of the filling replica and Redis stopped,
// in that order on one cluster (each phase starts from what the last left),
// then eviction with a short TTL on replicas of its own (clusterevict_test.go).
func TestCluster(t *testing.T) {
	requireClusterTools(t)
	bin := buildProxy(t) // once for the package: not part of this test's time
	began := time.Now()
	c := startClusterEnv(t, bin)
	t.Logf("cluster of %d replicas up, blobs seeded: %v", len(c.reps), time.Since(began).Round(time.Millisecond))
	for _, phase := range []struct {
		name string
		run  func(*testing.T, *clusterEnv)
	}{{"herd", clusterHerd}, {"kill", clusterKill}, {"redis-down", clusterRedisDown}, {"evict", clusterEvict}} {
		if !t.Run(phase.name, func(t *testing.T) { phase.run(t, c) }) {
			t.Fatalf("phase %s failed; the later phases need what it leaves\n%s", phase.name, logTails(c.reps))
		}
	}
	t.Logf("cluster test: %v in all", time.Since(began).Round(time.Millisecond))
}

// startClusterEnv starts versitygw, redis-server, a registry behind a front
// and three replicas, and seeds the registry with the blobs of the phases.
func startClusterEnv(t *testing.T, bin string) *clusterEnv {
	t.Helper()
	reg := startRegistry(t)
	c := &clusterEnv{top: t, bin: bin, reg: reg.URL, srv: s3test.Start(t), rs: redistest.Start(t), front: startFront(t, reg.URL, 3)}
	c.single = pushBlob(t, reg.URL, "cluster/single", herdSize)
	c.herd = pushBlob(t, reg.URL, "cluster/herd", herdSize)
	c.kill = pushBlob(t, reg.URL, "cluster/kill", killSize)
	c.down = pushBlob(t, reg.URL, "cluster/down", smallSize)
	c.back = pushBlob(t, reg.URL, "cluster/back", smallSize)
	c.reps = startReplicas(t, bin, c.srv, c.rs, c.front.URLs, replicaSpec{root: clusterRoot})
	for _, r := range c.reps {
		c.bases = append(c.bases, r.URL)
	}
	return c
}

// clusterHerd: one cold client on one replica gives the single fill time;
// then 32 clients spread over the replicas ask for another cold 256 MiB blob
// at once: the upstream serves it once, every client gets the right bytes,
// and the bucket holds them at the blob's key.
func clusterHerd(t *testing.T, c *clusterEnv) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	one := pullAll(ctx, c.bases[:1], c.single, 1)
	if err := one[0].err; err != nil {
		t.Fatalf("single cold client: %v", err)
	}
	before := c.front.blobGETs()
	ps := pullAll(ctx, c.bases, c.herd, herdClients)
	failed(t, ps, -1)
	gets := c.front.blobGETs() - before
	for _, tr := range c.front.transfers(c.herd.Digest) {
		t.Logf("herd: replica %d fetched %d MiB upstream in %v", tr.replica, tr.bytes>>20, tr.took.Round(time.Millisecond))
	}
	t.Logf("herd: %d clients over %d replicas, %d upstream GETs; slowest client %v (by replica %v), single cold client on one replica %v (%.1f×)",
		herdClients, len(c.reps), gets, slowest(ps).Round(time.Millisecond), slowestOn(ps, len(c.reps)),
		one[0].took.Round(time.Millisecond), slowest(ps).Seconds()/one[0].took.Seconds())
	if gets != 1 {
		t.Fatalf("%d upstream GETs of the blob across the cluster, want exactly 1", gets)
	}
	checkStored(t, c.srv, c.herd)
	checkStored(t, c.srv, c.single)
}

// failed reports every pull that failed, except those on replica skip.
func failed(t *testing.T, ps []pull, skip int) {
	t.Helper()
	for _, p := range ps {
		if p.err != nil && p.replica != skip {
			t.Errorf("client %d on replica %d: %v", p.client, p.replica, p.err)
		}
	}
}

// checkStored waits (bounded) for b at its key in the bucket and checks that
// the object there is b: its length and digest, read through the S3 API.
func checkStored(t *testing.T, srv *s3test.Server, b blob) {
	t.Helper()
	checkStoredAt(t, srv, clusterRoot, b)
}

// checkStoredAt is checkStored for the cache under root in the bucket.
func checkStoredAt(t *testing.T, srv *s3test.Server, root string, b blob) {
	t.Helper()
	key := objtest.BlobKey(root, b.Digest)
	var n int64
	var d string
	err := waitUntil(30*time.Second, func() (err error) { n, d, err = srv.Digest(key); return err })
	if err != nil {
		t.Fatalf("blob %s not in the bucket: %v", b.Digest, err)
	}
	if n != b.Size || d != b.Digest {
		t.Fatalf("the object at %s is %d bytes hashing to %s, want %d bytes of %s", key, n, d, b.Size, b.Digest)
	}
}

// clusterKill: the replica filling a cold blob (throttled upstream) is killed
// with SIGKILL a quarter into its fill; nothing is at the blob's key then;
// the clients of the other replicas complete with the right bytes once one of
// them took the lease over (after its TTL), with one more upstream GET; the
// bucket then holds the blob. The killed replica is started again, and its
// start leaves the blobs the others stored in place.
func clusterKill(t *testing.T, c *clusterEnv) {
	c.front.setRate(killRate)
	defer c.front.setRate(0)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before := c.front.blobGETs()
	done := make(chan []pull, 1)
	go func() { done <- pullAll(ctx, c.bases, c.kill, killClients) }()
	victim, killed := killFiller(t, c, c.kill, before)
	if keys := c.srv.Keys(t, path.Dir(objtest.BlobKey(clusterRoot, c.kill.Digest))); len(keys) != 0 {
		t.Errorf("after the kill, before any takeover, the bucket has %v at the blob's key", keys)
	}
	ps := <-done
	failed(t, ps, victim)
	for _, p := range ps {
		if p.replica == victim && p.err == nil {
			t.Errorf("client %d of the killed replica got the whole blob: it was killed after its fill", p.client)
		}
	}
	gets := c.front.blobGETs() - before
	logTakeover(t, c.front.transfers(c.kill.Digest), victim, killed, slowest(ps))
	if gets != 2 {
		t.Errorf("%d upstream GETs, want 2: the killed replica's and one takeover", gets)
	}
	checkStored(t, c.srv, c.kill)
	c.reps[victim].start(c.top)
	for _, b := range []blob{c.single, c.herd, c.kill} {
		checkStored(t, c.srv, b)
	}
}

// killFiller waits (bounded) until one replica has fetched a quarter of b
// upstream, checks it is the only one fetching (one upstream GET since
// before), and kills it.
func killFiller(t *testing.T, c *clusterEnv, b blob, before int64) (int, time.Time) {
	t.Helper()
	victim, fetched := -1, int64(0)
	err := waitUntil(30*time.Second, func() error {
		if victim, fetched = c.front.filling(b.Size / 4); victim < 0 {
			return errors.New("no replica has fetched a quarter of the blob")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, logTails(c.reps))
	}
	if n := c.front.blobGETs() - before; n != 1 {
		t.Errorf("%d upstream GETs of the blob while one replica fills, want 1", n)
	}
	c.reps[victim].kill(t)
	t.Logf("kill: replica %d was fetching; killed it with SIGKILL at %d of %d MiB", victim, fetched>>20, b.Size>>20)
	return victim, time.Now()
}

// logTakeover logs when another replica's upstream GET of the blob started
// after the kill, and checks that it fetched the whole blob.
func logTakeover(t *testing.T, trs []transfer, victim int, killed time.Time, slowest time.Duration) {
	t.Helper()
	var took bool
	for _, tr := range trs {
		if tr.replica == victim {
			continue
		}
		took = true
		t.Logf("kill: replica %d took over %v after the kill (lease TTL %v) and fetched %d MiB in %v; slowest client %v",
			tr.replica, tr.start.Sub(killed).Round(time.Millisecond), cache.DefaultLeaseTTL, tr.bytes>>20,
			tr.took.Round(time.Millisecond), slowest.Round(time.Millisecond))
		if !tr.whole {
			t.Errorf("the takeover by replica %d fetched %d bytes, not the whole blob", tr.replica, tr.bytes)
		}
	}
	if !took {
		t.Error("no other replica fetched the blob after the kill")
	}
}

// clusterRedisDown: with redis-server killed, every replica still serves
// hits (no upstream GET) and a cold miss, each replica fetching it alone
// (three GETs), and reports proxy_cluster_degraded 1; with Redis back, a cold
// blob is fetched once for the cluster again and the gauge is 0 on every
// replica.
func clusterRedisDown(t *testing.T, c *clusterEnv) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c.rs.Stop()
	before := c.front.blobGETs()
	failed(t, pullAll(ctx, c.bases, c.kill, len(c.reps)), -1)
	if n := c.front.blobGETs() - before; n != 0 {
		t.Errorf("%d hits went upstream with redis down", n)
	}
	c.front.setRate(smallRate)
	defer c.front.setRate(0)
	expectGETs(t, c, c.down, int64(len(c.reps)), "redis down: a cold miss")
	waitDegraded(t, c.reps, "1", 10*time.Second)

	c.rs.Restart()
	time.Sleep(probeWait)
	expectGETs(t, c, c.back, 1, "redis back: a cold miss")
	took := waitDegraded(t, c.reps, "0", 5*time.Second)
	t.Logf("redis back: proxy_cluster_degraded 0 on every replica %v after the cold miss", took.Round(time.Millisecond))
	checkStored(t, c.srv, c.down)
	checkStored(t, c.srv, c.back)
}

// expectGETs has one client per replica pull the cold blob b at once and
// checks that every one got it and that the upstream served it want times.
func expectGETs(t *testing.T, c *clusterEnv, b blob, want int64, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before := c.front.blobGETs()
	ps := pullAll(ctx, c.bases, b, len(c.reps))
	failed(t, ps, -1)
	gets := c.front.blobGETs() - before
	t.Logf("%s on all %d replicas: %d upstream GETs, slowest client %v", what, len(c.reps), gets, slowest(ps).Round(time.Millisecond))
	if gets != want {
		t.Errorf("%s: %d upstream GETs, want %d", what, gets, want)
	}
}
