package proxy

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/redis/go-redis/v9"

	"github.com/ocimirror/proxy/cluster"
)

// TestS3ClusterManifestOnce: three replicas sharing a bucket and a Redis,
// none holding the manifest; 30 concurrent GETs of it by digest spread over
// them fetch it with one upstream GET for the whole cluster (not one per
// replica), and all get the manifest; so does a burst of GETs of a tag none
// holds (a GET by tag upstream); with Redis stopped another manifest
// is still served (each replica fetching alone).
func TestS3ClusterManifestOnce(t *testing.T) {
	rs, srv, reg := startEnv(t)
	img := reg.PushRandom(t, "cl/man:v1", 1000, 1)
	d1, _ := img.Digest()
	up := slowManifests(t, reg.URL, http.MethodGet, time.Second)
	rs3 := startCluster(t, 3, srv, rs, up, 2*time.Second)

	gets := reg.Count("GET", "manifests")
	start := time.Now()
	tagBurst(t, rs3, 30, "cl/man", d1.String(), digest.Digest(d1.String()))
	n := reg.Count("GET", "manifests") - gets
	t.Logf("30 GETs of an uncached manifest by digest over 3 replicas: %d upstream GETs, %v", n, time.Since(start))
	if n != 1 {
		t.Errorf("%d upstream manifest GETs for one burst across the cluster, want 1", n)
	}

	cold := reg.PushRandom(t, "cl/man:cold", 1000, 1)
	dc, _ := cold.Digest()
	gets = reg.Count("GET", "manifests")
	tagBurst(t, rs3, 30, "cl/man", "cold", digest.Digest(dc.String()))
	n = reg.Count("GET", "manifests") - gets
	t.Logf("30 GETs of an uncached tag over 3 replicas: %d upstream GETs", n)
	if n != 1 {
		t.Errorf("%d upstream manifest GETs for one burst of a cold tag across the cluster, want 1", n)
	}

	img2 := reg.PushRandom(t, "cl/man:v2", 1000, 1)
	d2, _ := img2.Digest()
	rs.Stop()
	gets = reg.Count("GET", "manifests")
	start = time.Now()
	tagBurst(t, rs3, 30, "cl/man", d2.String(), digest.Digest(d2.String()))
	t.Logf("30 GETs with redis down: %d upstream GETs, %v", reg.Count("GET", "manifests")-gets, time.Since(start))
}

// TestS3ClusterManifestHolderFails: a replica that finds another holding the
// fetch lease of a manifest waits for it; when the holder lets go without
// having stored the manifest (its fetch failed), the replica fetches the
// manifest itself and answers right, with one upstream GET in all.
func TestS3ClusterManifestHolderFails(t *testing.T) {
	rs, srv, reg := startEnv(t)
	img := reg.PushRandom(t, "cl/gone:v1", 1000, 1)
	d, _ := img.Digest()
	rs1 := startCluster(t, 1, srv, rs, reg.URL, 2*time.Second)
	u, err := url.Parse(reg.URL)
	if err != nil {
		t.Fatal(err)
	}
	// The lease a replica fetching this manifest would hold (renewed until released).
	coord := cluster.NewRedis(redis.NewClient(&redis.Options{Addr: rs.Addr, MaxRetries: -1}))
	t.Cleanup(func() { coord.Close() })
	held, release, err := coord.Lease(context.Background(), "manifest:"+u.Host+"/cl/gone@"+d.String(), 2*time.Second)
	if err != nil || !held {
		t.Fatalf("take the manifest's fetch lease: held %v, %v", held, err)
	}
	const hold = 1500 * time.Millisecond
	timer := time.AfterFunc(hold, release) // the holder gives up, nothing stored
	t.Cleanup(func() { timer.Stop(); release() })

	gets := reg.Count("GET", "manifests")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	got, err := manifestDigest(ctx, rs1[0].URL, "cl/gone", d.String())
	took := time.Since(start)
	if err != nil || got != digest.Digest(d.String()) {
		t.Fatalf("GET by digest: %s, %v; want %s", got, err, d)
	}
	if n := reg.Count("GET", "manifests") - gets; n != 1 {
		t.Errorf("%d upstream manifest GETs, want 1 (after the holder let go)", n)
	}
	if took < hold-100*time.Millisecond {
		t.Errorf("answered in %v: the replica did not wait for the lease holder (%v)", took, hold)
	}
	t.Logf("answered %v after the GET, the holder having let go after %v", took, hold)
}
