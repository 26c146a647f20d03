package proxy

import (
	"net/http"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
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
