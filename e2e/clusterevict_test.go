//go:build e2e

package e2e

// The eviction phase of the cluster test (issue 9): "evict with a short TTL:
// exactly one replica deletes, content in use stays", with the built binary.
// It runs three replicas of its own (proxy.ttl 3s, delete enabled) beside the
// cluster of the other phases, on the same versitygw and redis-server but
// under another key prefix and in another Redis database, so that neither
// cluster sees the other's content, leases or shared index. The in-process
// version is cmd/proxy/cluster_test.go's TestS3ClusterEviction.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ocimirror/proxy/internal/objtest"
)

const (
	evictTTL   = 3 * time.Second // proxy.ttl: three exchanges of the shared index (1 s each)
	evictRoot  = "/evict"
	evictDB    = 1
	xEvery     = 500 * time.Millisecond // X's pulls through one replica
	zSize      = 64 << 20
	zRate      = 8 << 20          // bytes/s: the slow client reads Z for 8 s, past Z's TTL
	evictBound = 20 * time.Second // from Y's pull to its deletion
	settle     = time.Second      // X pulled on after all else, for one more pass
	zGoneBound = 30 * time.Second // from the end of Z's read to its deletion: the evictor backs off while Z is in use
	settleZ    = zGoneBound + time.Second
	leaseLine  = "this replica holds the evict lease"
)

// evictContent is the phase's upstream content: X pulled again and again, Y
// (two blobs of one repository) pulled once, Z large and read slowly.
type evictContent struct {
	x, z blob
	y    []blob
}

// clusterEvict: replica 0 holds the evict lease. X is pulled through replica
// 1 every 500 ms for the whole phase, Y once through replica 2, and a slow
// client reads Z through replica 2 for longer than the TTL. Then Y's objects
// (blob data and repository links) are gone from the bucket, deleted by
// replica 0 alone (proxy_evicted_total of the others stays 0); X is still
// stored and was fetched upstream once, every pull a hit; the slow client got
// Z whole and right, Z stayed while it read and went within zGoneBound after.
func clusterEvict(t *testing.T, c *clusterEnv) {
	began := time.Now()
	ct := evictContent{
		x: pushBlob(t, c.reg, "cluster/evict-x", 1<<20),
		y: []blob{pushBlob(t, c.reg, "cluster/evict-y", 1<<20), pushBlob(t, c.reg, "cluster/evict-y", 1<<20)},
		z: pushBlob(t, c.reg, "cluster/evict-z", zSize),
	}
	reps := startEvictReplicas(t, c)
	t.Logf("evict: 3 replicas up, replica 0 holds the evict lease: %v", time.Since(began).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	gets := c.front.blobGETs()
	before := evictedTotals(t, reps)

	mustGet(ctx, t, reps[1].URL, ct.x, "X, cold")
	stopX := keepPulling(ctx, reps[1].URL, ct.x)
	mustGet(ctx, t, reps[2].URL, ct.z, "Z, cold")
	waitStored(t, c, []string{dataDir(ct.z)}) // the slow read is a hit
	zStart := time.Now()
	zDone := make(chan pull, 1)
	go func() { took, err := getBlobPaced(ctx, reps[2].URL, ct.z, zRate); zDone <- pull{took: took, err: err} }()
	for _, y := range ct.y {
		mustGet(ctx, t, reps[2].URL, y, "Y")
	}
	yPulled := time.Now()
	waitStored(t, c, yPrefixes(ct.y))

	w := watchEviction(t, c, reps, ct, yPulled, zDone)
	xPulls, xErrs := stopX()
	logEviction(t, w, yPulled, zStart, xPulls)
	checkZ(t, w)
	for _, err := range xErrs {
		t.Errorf("a pull of X through replica 1: %v", err)
	}
	if n := c.front.blobGETs() - gets; n != int64(2+len(ct.y)) {
		t.Errorf("%d upstream blob GETs, want %d: X, Y and Z once each (X fetched %d times)",
			n, 2+len(ct.y), len(c.front.transfers(ct.x.Digest)))
	}
	checkStoredAt(t, c.srv, evictRoot, ct.x)
	checkDeleters(t, reps, before)
	t.Logf("evict: phase took %v", time.Since(began).Round(time.Millisecond))
}

// startEvictReplicas starts the phase's three replicas: replica 0 first,
// until it holds the evict lease, so that the replica that evicts is not the
// one X is pulled through.
func startEvictReplicas(t *testing.T, c *clusterEnv) []*replica {
	t.Helper()
	spec := replicaSpec{root: evictRoot, db: evictDB, proxy: "  ttl: " + evictTTL.String() + "\n"}
	a := startReplica(t, c.bin, c.srv, c.rs, 0, c.front.URLs[0], spec)
	if err := waitUntil(10*time.Second, func() error { return logHas(a, leaseLine) }); err != nil {
		t.Fatalf("replica 0 alone did not take the evict lease: %v\n%s", err, logTails([]*replica{a}))
	}
	return []*replica{a,
		startReplica(t, c.bin, c.srv, c.rs, 1, c.front.URLs[1], spec),
		startReplica(t, c.bin, c.srv, c.rs, 2, c.front.URLs[2], spec)}
}

// mustGet GETs b through the replica at base, fatal if that fails.
func mustGet(ctx context.Context, t *testing.T, base string, b blob, what string) {
	t.Helper()
	if _, err := getBlob(ctx, base, b); err != nil {
		t.Fatalf("pull of %s: %v", what, err)
	}
}

// eviction is what the phase saw of the bucket: when Y's objects and Z's
// data were first seen gone (zero: never), the slow client's pull of Z and
// when it ended.
type eviction struct {
	yGone, zGone, zEnded time.Time
	z                    pull
}

// watchEviction lists the bucket every 200 ms until Y's objects and Z's
// data are gone (or settleZ passed since the slow read of Z ended) and
// settle has passed since both, noting when Y's objects and Z's data were
// first seen gone. It fails the test if Y is not gone within evictBound of
// its pull, or the slow read does not end.
func watchEviction(t *testing.T, c *clusterEnv, reps []*replica, ct evictContent, yPulled time.Time, zDone <-chan pull) eviction {
	t.Helper()
	var w eviction
	for tick := time.NewTicker(200 * time.Millisecond); ; <-tick.C {
		now := time.Now()
		if w.yGone.IsZero() && !anyKeys(t, c, yPrefixes(ct.y)) {
			w.yGone = now
		}
		if w.zGone.IsZero() && !anyKeys(t, c, []string{dataDir(ct.z)}) {
			w.zGone = now
		}
		select {
		case w.z = <-zDone:
			w.zEnded = now
		default:
		}
		zSettled := !w.zEnded.IsZero() && (w.zGone.IsZero() && now.Sub(w.zEnded) >= settleZ ||
			!w.zGone.IsZero() && now.Sub(w.zGone) >= settle)
		switch {
		case !w.yGone.IsZero() && now.Sub(w.yGone) >= settle && zSettled:
			tick.Stop()
			return w
		case w.yGone.IsZero() && now.Sub(yPulled) > evictBound:
			t.Fatalf("Y's objects still in the bucket %v after its pull (TTL %v)\n%s", evictBound, evictTTL, logTails(reps))
		case w.zEnded.IsZero() && now.Sub(yPulled) > time.Minute:
			t.Fatal("the slow read of Z did not end within a minute")
		}
	}
}

// logEviction logs the phase's figures.
func logEviction(t *testing.T, w eviction, yPulled, zStart time.Time, xPulls int) {
	t.Helper()
	t.Logf("evict: Y's objects gone %v after its pull (TTL %v); X pulled %d times through replica 1 meanwhile",
		w.yGone.Sub(yPulled).Round(time.Millisecond), evictTTL, xPulls)
	zGone := "still stored at the end"
	if !w.zGone.IsZero() {
		zGone = "deleted " + w.zGone.Sub(zStart).Round(time.Millisecond).String() + " after the read began, " +
			w.zGone.Sub(w.zEnded).Round(time.Millisecond).String() + " after it ended"
	}
	t.Logf("evict: slow client read Z (%d MiB at %d MiB/s) in %v; Z %s", zSize>>20, zRate>>20, w.z.took.Round(time.Millisecond), zGone)
}

// checkZ checks what the design promises a blob being served: the slow
// client gets it whole and right, Z stays while the client reads it (replica
// 2 publishes it as served, so the evicting replica finds it in use), and Z
// is deleted within zGoneBound after the read ended.
func checkZ(t *testing.T, w eviction) {
	t.Helper()
	if w.z.err != nil {
		t.Errorf("the slow client of Z: %v", w.z.err)
	}
	switch {
	case w.zGone.IsZero():
		t.Errorf("Z still stored %v after its read ended, want deleted within %v", settleZ, zGoneBound)
	case w.zGone.Before(w.zEnded):
		t.Errorf("Z deleted %v before its read ended", w.zEnded.Sub(w.zGone).Round(time.Millisecond))
	case w.zGone.Sub(w.zEnded) > zGoneBound:
		t.Errorf("Z deleted %v after its read ended, want within %v", w.zGone.Sub(w.zEnded).Round(time.Millisecond), zGoneBound)
	}
}

// yPrefixes are the bucket prefixes of Y's objects: each blob's data and the
// repository's links.
func yPrefixes(ys []blob) []string {
	out := []string{strings.TrimPrefix(evictRoot, "/") + "/docker/registry/v2/repositories/" + ys[0].Repo + "/"}
	for _, y := range ys {
		out = append(out, dataDir(y))
	}
	return out
}

// dataDir is the prefix of b's data in the phase's cache.
func dataDir(b blob) string {
	return strings.TrimSuffix(objtest.BlobKey(evictRoot, b.Digest), "data")
}

// waitStored waits (bounded) until the bucket has keys under every one of
// prefixes: a replica commits a fill after its client got the last byte.
func waitStored(t *testing.T, c *clusterEnv, prefixes []string) {
	t.Helper()
	err := waitUntil(10*time.Second, func() error {
		for _, p := range prefixes {
			if !anyKeys(t, c, []string{p}) {
				return fmt.Errorf("nothing under %s", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("not in the bucket after its pull: %v", err)
	}
}

// anyKeys reports whether the bucket has a key under any of prefixes.
func anyKeys(t *testing.T, c *clusterEnv, prefixes []string) bool {
	t.Helper()
	for _, p := range prefixes {
		if len(c.srv.Keys(t, p)) > 0 {
			return true
		}
	}
	return false
}
