package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/bcrypt"

	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/internal/objtest"
	"github.com/ocimirror/proxy/internal/redistest"
	"github.com/ocimirror/proxy/internal/s3test"
	"github.com/ocimirror/proxy/internal/syncbuf"
	"github.com/ocimirror/proxy/internal/testregistry"
)

// clusterReplicaConfig writes the configuration of one replica of a cluster:
// srv's bucket, rs's Redis, hosted namespace dev, admin alice (password
// alice), its own state directory.
func clusterReplicaConfig(t *testing.T, srv *s3test.Server, rs *redistest.Server, upstreamURL, state string) (string, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	hash, _ := bcrypt.GenerateFromPassword([]byte("alice"), bcrypt.MinCost)
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("alice:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf(`version: 0.1
log: {level: debug}
%shttp: {addr: %q}
proxy:
  remoteurl: %s
  statedirectory: %s
hosted: {namespaces: [dev]}
auth:
  admins: [alice]
  htpasswd: {realm: test, path: %s}
redis: {addrs: [%q], dialtimeout: 300ms, readtimeout: 300ms, writetimeout: 300ms}
`, objtest.ProxyStorage(t, srv, "/cache"), addr, upstreamURL, state, htpasswd, rs.Addr)
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, addr
}

// serveReplica runs proxy serve on cfgPath until the test ends; its log
// goes to logs.
func serveReplica(t *testing.T, cfgPath, addr string, logs io.Writer) {
	t.Helper()
	cfg, err := config.Load(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := logrus.New()
	l.SetOutput(logs)
	l.SetLevel(logrus.DebugLevel)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServer(ctx, cfg, logrus.NewEntry(l)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("runServer: %v", err)
			}
		case <-time.After(40 * time.Second):
			t.Error("runServer did not return 40s after cancel")
		}
	})
	waitHealthy(t, "http://"+addr)
}

// localPolicy writes a poll policy into a single node's mirror.db, as a
// replica run alone before the cluster left it, and returns its id.
func localPolicy(t *testing.T, path, remoteURL string) string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	id := "18eaa0badb4f1b13f88d7900"
	v := fmt.Sprintf(`{"kind":"poll","policy":{"id":%q,"localRepository":"dev/old","remoteHost":%q,`+
		`"remoteRepository":"lib/app","tagTemplate":"%%n","enabled":true,"rules":[]}}`, id, remoteURL)
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("policies"))
		if err != nil {
			return err
		}
		return b.Put([]byte(id), []byte(v))
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// apiGet GETs path of a replica's /api/v0 as alice and returns the status
// and body.
func apiGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/api/v0"+path, nil)
	req.SetBasicAuth("alice", "alice")
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeClusterMirroring: two replicas of proxy serve on one bucket and
// one Redis. The policy replica a had in its own mirror.db from before is
// imported and listed by b; a policy created through a is listed by b; with
// Redis stopped pulls go on while the API answers 503 saying why; with Redis
// back (append-only) the API answers again with the same policies.
func TestServeClusterMirroring(t *testing.T) {
	rs := redistest.Start(t, redistest.AppendOnly())
	srv := s3test.Start(t)
	reg := testregistry.Start(t)
	reg.PushRandom(t, "lib/app:v1", 20_000, 1)
	stateA, stateB := t.TempDir(), t.TempDir()
	oldID := localPolicy(t, filepath.Join(stateA, "mirror.db"), reg.URL)
	cfgA, addrA := clusterReplicaConfig(t, srv, rs, reg.URL, stateA)
	cfgB, addrB := clusterReplicaConfig(t, srv, rs, reg.URL, stateB)
	logsA := &syncbuf.Buffer{}
	serveReplica(t, cfgA, addrA, logsA)
	serveReplica(t, cfgB, addrB, io.Discard)

	waitFor(t, "b to list the policy imported from a's mirror.db", func() bool {
		_, body := apiGet(t, addrB, "/repositories/dev/old/pollMirroringPolicies")
		return strings.Contains(body, oldID)
	})
	if !strings.Contains(logsA.String(), "imported into redis") {
		t.Errorf("a did not log the import of its local policies")
	}
	body, _ := json.Marshal(map[string]any{"remoteHost": reg.URL, "remoteRepository": "lib/app"})
	req, _ := http.NewRequest(http.MethodPost, "http://"+addrA+"/api/v0/repositories/dev/app/pollMirroringPolicies", bytes.NewReader(body))
	req.SetBasicAuth("alice", "alice")
	resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create on a: %d", resp.StatusCode)
	}
	if st, list := apiGet(t, addrB, "/repositories/dev/app/pollMirroringPolicies"); st != http.StatusOK || !strings.Contains(list, "lib/app") {
		t.Fatalf("list on b: %d %s", st, list)
	}

	rs.Stop()
	waitFor(t, "a to log that mirroring paused", func() bool {
		return strings.Contains(logsA.String(), "mirroring paused on this replica")
	})
	pullAll(t, addrA, "lib/app:v1")
	st, msg := apiGet(t, addrB, "/repositories/dev/app/pollMirroringPolicies")
	if st != http.StatusServiceUnavailable || !strings.Contains(msg, `"code":"UNAVAILABLE"`) || !strings.Contains(msg, "coordination is unavailable") {
		t.Fatalf("API on b with redis down: %d %s", st, msg)
	}
	rs.Restart()
	waitFor(t, "b's API to answer again after redis's return", func() bool {
		st, list := apiGet(t, addrB, "/repositories/dev/app/pollMirroringPolicies")
		return st == http.StatusOK && strings.Contains(list, "lib/app")
	})
	waitFor(t, "a to log that mirroring resumed", func() bool {
		return strings.Contains(logsA.String(), "mirroring resumed")
	})
}
