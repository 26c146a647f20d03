package main

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/internal/objtest"
	"github.com/ocimirror/proxy/internal/redistest"
	"github.com/ocimirror/proxy/internal/s3test"
	"github.com/ocimirror/proxy/internal/syncbuf"
	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
)

// node is one replica of a test cluster, wired as serve wires it (index,
// store, reconcile, newHandler with its coordinator, index sync and evictor)
// on its own state directory, the shared bucket and the shared Redis.
type node struct {
	name  string
	ix    *scheduler.Index
	store *storage.Store
	reg   *prometheus.Registry
	host  string
	logs  *syncbuf.Buffer
}

// clusterConfig writes the configuration of one replica: the bucket of srv
// (prefix /cache), Redis rs, a state directory of its own, delete enabled
// with ttl.
func clusterConfig(t *testing.T, srv *s3test.Server, rs *redistest.Server, upstreamURL string, ttl time.Duration) string {
	t.Helper()
	doc := fmt.Sprintf(`version: 0.1
log: {level: debug}
%sredis: {addrs: [%q]}
proxy:
  remoteurl: %s
  statedirectory: %s
  ttl: %s
`, objtest.ProxyStorage(t, srv, "/cache"), rs.Addr, upstreamURL, t.TempDir(), ttl)
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startNode starts a replica on the configuration at cfgPath and stops it
// when the test ends.
func startNode(t *testing.T, nm, cfgPath string) *node {
	t.Helper()
	cfg, err := config.Load(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{name: nm, logs: &syncbuf.Buffer{}}
	l := logrus.New()
	l.SetOutput(n.logs)
	l.SetLevel(logrus.DebugLevel)
	log := logrus.NewEntry(l)
	ctx, cancel := context.WithCancel(context.Background())
	if n.ix, err = openIndex(cfg, log); err != nil {
		t.Fatal(err)
	}
	if n.store, err = openStore(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := reconcile(ctx, n.ix, n.store, cfg, true, log); err != nil {
		t.Fatal(err)
	}
	h, reg, stop, err := newHandler(ctx, cfg, n.ix, n.store, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	n.reg, n.host = reg, strings.TrimPrefix(srv.URL, "http://")
	t.Cleanup(func() {
		srv.Close()
		stop()
		cancel()
		_ = n.ix.Close()
		if t.Failed() {
			t.Logf("logs of replica %s:\n%s", n.name, lastLines(n.logs.String(), 40))
		}
	})
	return n
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// pull reads the whole image repo:tag through the replica, checking digests.
func (n *node) pull(t *testing.T, repoTag string) {
	t.Helper()
	ref, err := name.ParseReference(n.host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull %s through %s: %v", repoTag, n.name, err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, layer := range layers {
		rc, err := layer.Compressed()
		if err != nil {
			t.Fatalf("pull %s through %s: %v", repoTag, n.name, err)
		}
		_, err = io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatalf("pull %s through %s: layer: %v", repoTag, n.name, err)
		}
	}
	if _, err := img.RawConfigFile(); err != nil {
		t.Fatal(err)
	}
}

// metric returns the value of the series name{labels} in the replica's
// registry; 0 if it has none.
func (n *node) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := n.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m.GetLabel(), labels) {
				switch {
				case m.Counter != nil:
					return m.GetCounter().GetValue()
				case m.Gauge != nil:
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

func hasLabels(got []*dto.LabelPair, want []string) bool {
	for i := 0; i+1 < len(want); i += 2 {
		found := false
		for _, l := range got {
			found = found || (l.GetName() == want[i] && l.GetValue() == want[i+1])
		}
		if !found {
			return false
		}
	}
	return true
}

// deleted is how many contents (blobs and manifests) the replica's eviction
// passes deleted.
func (n *node) deleted(t *testing.T) int {
	return int(n.metric(t, "proxy_evicted_total", "kind", "blob"))
}

// stored reports whether the bucket holds the content d.
func (n *node) stored(d digest.Digest) bool {
	_, err := n.store.StatBlob(context.Background(), d)
	return err == nil
}

// image is what a pull of one image stores: its entries and contents.
type image struct {
	keys     []scheduler.Key
	contents []digest.Digest // manifest, config, layers
}

// imageOf lists the entries and contents of img pulled as repo:tag.
func imageOf(t *testing.T, img v1.Image, repo, tag string) image {
	t.Helper()
	md, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	cd, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	m := digest.Digest(md.String())
	im := image{contents: []digest.Digest{m, digest.Digest(cd.String())}}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		ld, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		im.contents = append(im.contents, digest.Digest(ld.String()))
	}
	im.keys = append(im.keys, scheduler.Key{Kind: scheduler.KindTag, Repo: repo, Tag: tag, Digest: m},
		scheduler.Key{Kind: scheduler.KindManifest, Repo: repo, Digest: m})
	for _, d := range im.contents[1:] {
		im.keys = append(im.keys, scheduler.Key{Kind: scheduler.KindBlob, Repo: repo, Digest: d})
	}
	return im
}

// indexed reports whether every entry of im is in the replica's index.
func (n *node) indexed(im image) bool {
	for _, k := range im.keys {
		if _, ok := n.ix.Get(k); !ok {
			return false
		}
	}
	return true
}

// waitLimit polls ok every 50ms for up to limit and returns how long it took.
func waitLimit(t *testing.T, limit time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > limit {
			t.Fatalf("gave up waiting %v for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}
