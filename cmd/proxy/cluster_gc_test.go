package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/internal/redistest"
	"github.com/ocimirror/proxy/internal/s3test"
	"github.com/ocimirror/proxy/internal/testregistry"
)

// TestGCClusterLeavesCacheToReplicas: `proxy gc` on a replica's configuration
// deletes no cached content, even content due for eviction: in a cluster only
// the replica holding the evict lease evicts, seeing what every replica fills
// and serves, which gc from the command line would not.
func TestGCClusterLeavesCacheToReplicas(t *testing.T) {
	rs := redistest.Start(t)
	srv := s3test.Start(t)
	reg := testregistry.Start(t)
	im := imageOf(t, reg.PushRandom(t, "cl/g:v1", 20_000, 1), "cl/g", "v1")
	cfgPath := clusterConfig(t, srv, rs, reg.URL, time.Hour)
	t.Run("pull through a replica, then stop it", func(t *testing.T) {
		n := startNode(t, "a", cfgPath)
		n.pull(t, "cl/g:v1")
		waitLimit(t, 10*time.Second, "the image in the bucket", func() bool { return allStored(n, im) })
	})
	doc, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// The same replica's state, with a TTL that every entry has outlived.
	short := filepath.Join(t.TempDir(), "short.yml")
	if err := os.WriteFile(short, bytes.Replace(doc, []byte("ttl: 1h0m0s"), []byte("ttl: 1s"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)

	var out, errs bytes.Buffer
	if code := gc([]string{short}, &out, &errs, nil); code != exitOK {
		t.Fatalf("proxy gc exited %d: %s", code, errs.String())
	}
	if !strings.Contains(out.String(), "not evicted by gc in a cluster") {
		t.Errorf("gc's report does not say the cache is left to the replicas:\n%s", out.String())
	}
	cfg, err := config.Load(short, nil)
	if err != nil {
		t.Fatal(err)
	}
	store, err := openStore(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.contents {
		if _, err := store.StatBlob(context.Background(), d); err != nil {
			t.Errorf("%s is gone from the bucket after gc: %v", d, err)
		}
	}
}
