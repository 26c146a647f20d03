//go:build e2e

package e2e

// The replicas of the cluster test: processes of the built binary, each with
// its own listener and proxy.statedirectory (index, lock, spool), all on one
// bucket of a versitygw and one redis-server.

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ocimirror/proxy/internal/objtest"
	"github.com/ocimirror/proxy/internal/redistest"
	"github.com/ocimirror/proxy/internal/s3test"
	"github.com/ocimirror/proxy/internal/syncbuf"
)

// clusterRoot is the key prefix of the replicas' cache in the bucket.
const clusterRoot = "/cache"

// replica is one proxy process of the cluster.
type replica struct {
	ID   int
	Addr string // 127.0.0.1:port
	URL  string // http://Addr
	Logs *syncbuf.Buffer

	bin, cfg string
	cmd      *exec.Cmd
}

// requireClusterTools fails (under E2E_REQUIRE_CLIENTS=1) or skips the test
// unless versitygw and redis-server are on PATH, where internal/s3test and
// internal/redistest look for them. .ci/test installs both.
func requireClusterTools(t *testing.T) {
	t.Helper()
	requireTool(t, "versitygw", s3test.Install)
	requireTool(t, "redis-server", "apt-get install redis-server")
}

// replicaSpec sets one cluster of replicas apart from another on the same
// bucket and redis-server: its key prefix, its Redis database (leases and the
// shared index) and more keys of the proxy section.
type replicaSpec struct {
	root  string // key prefix of the cache in the bucket
	db    int    // Redis database
	proxy string // more keys of the proxy section, each line indented by two spaces
}

// startReplicas starts n replicas of bin on srv's bucket and rs, replica i
// filling from upstreams[i].
func startReplicas(t *testing.T, bin string, srv *s3test.Server, rs *redistest.Server, upstreams []string, spec replicaSpec) []*replica {
	t.Helper()
	var out []*replica
	for i, up := range upstreams {
		out = append(out, startReplica(t, bin, srv, rs, i, up, spec))
	}
	return out
}

// startReplica starts replica id of bin on srv's bucket and rs, filling from
// upstream, and waits until it answers.
func startReplica(t *testing.T, bin string, srv *s3test.Server, rs *redistest.Server, id int, upstream string, spec replicaSpec) *replica {
	t.Helper()
	r := &replica{ID: id, Addr: freeAddr(t), bin: bin}
	r.URL = "http://" + r.Addr
	r.cfg = filepath.Join(t.TempDir(), "config.yml")
	writeFile(t, r.cfg, replicaConfig(t, srv, rs, r.Addr, upstream, t.TempDir(), spec))
	r.start(t)
	return r
}

// replicaConfig is a replica's configuration. Redirects are off, so that every
// hit is served by the replica itself, which is what the test checks. Each
// replica's peerurl is its own address and http.secret is shared, so that a
// replica waiting for another's fill streams it from that replica.
func replicaConfig(t testing.TB, srv *s3test.Server, rs *redistest.Server, addr, upstreamURL, state string, spec replicaSpec) string {
	return fmt.Sprintf(`version: 0.1
log: {level: info}
%shttp: {addr: %q, secret: the-cluster-test-secret}
proxy:
  remoteurl: %s
  statedirectory: %s
  peerurl: http://%s
%sredis:
  addrs: [%q]
  db: %d
`, objtest.ProxyStorage(t, srv, spec.root), addr, upstreamURL, state, addr, spec.proxy, rs.Addr, spec.db)
}

// start runs the replica's binary and waits until it answers /v2/.
func (r *replica) start(t *testing.T) {
	t.Helper()
	r.cmd, r.Logs = runProxy(t, r.Addr, nil, r.bin, "serve", r.cfg)
}

// kill ends the replica with SIGKILL, as a crash: no lease released, no fill
// finished, and waits for it to be gone.
func (r *replica) kill(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill replica %d: %v", r.ID, err)
	}
	_, _ = r.cmd.Process.Wait()
}

// degradedGauge matches the proxy_cluster_degraded sample of /metrics.
var degradedGauge = regexp.MustCompile(`(?m)^proxy_cluster_degraded ([0-9.e+-]+)$`)

// degraded returns the value of the replica's proxy_cluster_degraded gauge.
func (r *replica) degraded() (string, error) {
	body, err := r.scrape()
	if err != nil {
		return "", err
	}
	m := degradedGauge.FindSubmatch(body)
	if m == nil {
		return "", fmt.Errorf("replica %d metrics have no proxy_cluster_degraded sample", r.ID)
	}
	return string(m[1]), nil
}

// scrape returns the replica's /metrics page.
func (r *replica) scrape() ([]byte, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(r.URL + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("replica %d metrics: %w", r.ID, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("replica %d metrics: %w", r.ID, err)
	}
	return body, nil
}

// counter returns the sum of the samples of the counter name on the
// replica's /metrics, whatever their labels (0 when it has none yet).
func (r *replica) counter(name string) (float64, error) {
	body, err := r.scrape()
	if err != nil {
		return 0, err
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(?:\{[^}]*\})? ([0-9.e+-]+)$`)
	var sum float64
	for _, m := range re.FindAllSubmatch(body, -1) {
		v, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			return 0, fmt.Errorf("replica %d metric %s: %w", r.ID, name, err)
		}
		sum += v
	}
	return sum, nil
}

// waitDegraded waits (at most timeout) until every replica's degraded gauge
// reads want, and returns how long that took.
func waitDegraded(t *testing.T, rs []*replica, want string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	err := waitUntil(timeout, func() error {
		for _, r := range rs {
			got, err := r.degraded()
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("replica %d: proxy_cluster_degraded %s, want %s", r.ID, got, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

// logHas returns nil if the replica's log has s, an error otherwise.
func logHas(r *replica, s string) error {
	if !strings.Contains(r.Logs.String(), s) {
		return fmt.Errorf("replica %d has not logged %q", r.ID, s)
	}
	return nil
}

// logTails returns the end of every replica's log, for failure messages.
func logTails(rs []*replica) string {
	var b strings.Builder
	for _, r := range rs {
		s := r.Logs.String()
		if len(s) > 3000 {
			s = s[len(s)-3000:]
		}
		fmt.Fprintf(&b, "--- replica %d (%s)\n%s\n", r.ID, r.Addr, s)
	}
	return b.String()
}
