package mirror

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ocimirror/proxy/internal/redistest"
	"github.com/ocimirror/proxy/internal/testregistry"
)

// TestClusterRedisDown: with Redis stopped, the API answers 503 with a
// registry-style error saying coordination is unavailable, a running job
// stops before its lease could expire, pushes to hosted repositories are
// still accepted (their mirroring is held) and served; once Redis is back
// (with its append-only file, the policies are still there) the API answers
// again, the held push is mirrored and the interrupted job runs to the end.
func TestClusterRedisDown(t *testing.T) {
	rs := redistest.Start(t, redistest.AppendOnly())
	remoteReg := testregistry.Start(t)
	x := newExecutions()
	lease := 900 * time.Millisecond
	stopped := make(chan error, 4)
	copyOnce := func(name string) JobFunc {
		return func(ctx context.Context, job Job, _ func(string, ...any)) error {
			x.record(name, job.ID)
			if len(x.of(job.ID)) > 1 {
				return nil // the run after the outage ends
			}
			<-ctx.Done()
			stopped <- context.Cause(ctx)
			return ctx.Err()
		}
	}
	dir := t.TempDir()
	a := startReplica(t, rs, "a", replicaConfig{hostedDir: dir, lease: lease, funcs: map[string]JobFunc{"copy": copyOnce("a")}})
	b := startReplica(t, rs, "b", replicaConfig{hostedDir: dir, lease: lease, funcs: map[string]JobFunc{"copy": copyOnce("b")}})
	push := map[string]any{"remoteHost": remoteReg.URL, "remoteRepository": "out/app"}
	if st := a.call(t, "alice", http.MethodPost, "/repositories/dev/app/pushMirroringPolicies", push, nil); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	job, err := a.jobs.Submit(context.Background(), "copy", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-x.ran:
	case <-time.After(10 * time.Second):
		t.Fatal("the job did not start")
	}

	rs.Stop()
	for _, path := range []string{"/repositories/dev/app/pushMirroringPolicies", "/jobs", "/jobs/" + job.ID} {
		var out struct {
			Errors []struct{ Code, Message string }
		}
		start := time.Now()
		st := a.call(t, "alice", http.MethodGet, path, nil, &out)
		if st != http.StatusServiceUnavailable || len(out.Errors) != 1 || out.Errors[0].Code != "UNAVAILABLE" ||
			!strings.Contains(out.Errors[0].Message, "coordination is unavailable") {
			t.Errorf("GET %s with redis down: %d %+v", path, st, out)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("GET %s with redis down took %v", path, took)
		}
	}
	if st := a.call(t, "alice", http.MethodGet, "/crons", nil, nil); st != http.StatusOK {
		t.Errorf("crons with redis down: %d", st)
	}
	select {
	case err := <-stopped:
		if !errors.Is(err, errLeaseLost) {
			t.Errorf("the running job stopped for %v, want its lease lost", err)
		}
	case <-time.After(lease + 3*time.Second):
		t.Fatal("the running job went on with redis down for longer than its lease")
	}
	img, _ := random.Image(512, 1)
	ref, _ := name.ParseReference("hosted.local/dev/app:during-outage", name.Insecure)
	if err := remote.Write(ref, img, remote.WithTransport(b.reg.Transport())); err != nil {
		t.Fatalf("push to a hosted repository with redis down: %v", err)
	}
	if _, err := remote.Image(ref, remote.WithTransport(a.reg.Transport())); err != nil {
		t.Fatalf("pull from a hosted repository with redis down: %v", err)
	}

	rs.Restart()
	restarted := time.Now()
	deadline := restarted.Add(10 * time.Second)
	for headDigest(t, remoteReg.Host, "out/app:during-outage") != hexOf(t, img) {
		if time.Now().After(deadline) {
			t.Fatal("the push held during the outage was not mirrored within 10s of redis's return")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var list []Policy
	if st := a.call(t, "alice", http.MethodGet, "/repositories/dev/app/pushMirroringPolicies", nil, &list); st != http.StatusOK || len(list) != 1 {
		t.Errorf("policies after redis's return: %d %+v", st, list)
	}
	waitStatusOn(t, a, job.ID, StatusDone, 10*time.Second)
	t.Logf("runs of the interrupted job: %v; mirroring resumed %v after redis restarted",
		x.of(job.ID), time.Since(restarted).Round(time.Millisecond))
}
