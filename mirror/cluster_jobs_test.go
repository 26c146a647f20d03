package mirror

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/ocimirror/proxy/internal/redistest"
)

// TestClusterJobsRunOnce: 60 jobs submitted through three replicas that all
// run workers on one Redis: every job runs exactly once and ends done.
func TestClusterJobsRunOnce(t *testing.T) {
	rs := redistest.Start(t)
	x := newExecutions()
	var rs3 []*replica
	for i := range 3 {
		name := fmt.Sprintf("r%d", i)
		rs3 = append(rs3, startReplica(t, rs, name, replicaConfig{funcs: map[string]JobFunc{
			"count": func(ctx context.Context, job Job, logf func(string, ...any)) error {
				x.record(name, job.ID)
				logf("ran on %s", name)
				time.Sleep(5 * time.Millisecond) // long enough for the others to try to claim it too
				return nil
			},
		}}))
	}
	const n = 60
	var ids []string
	for i := range n {
		job, err := rs3[i%3].jobs.Submit(context.Background(), "count", map[string]string{"i": fmt.Sprint(i)}, 2)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, job.ID)
	}
	perReplica := map[string]int{}
	for _, id := range ids {
		waitStatusOn(t, rs3[0], id, StatusDone, 20*time.Second)
		runs := x.of(id)
		if len(runs) != 1 {
			t.Errorf("job %s ran %d times (%v), want once", id, len(runs), runs)
			continue
		}
		perReplica[runs[0]]++
	}
	logs, err := rs3[1].jobs.Logs(context.Background(), ids[0])
	if err != nil || !logsContain(logs, "ran on ") {
		t.Errorf("the log of a job, read on another replica: %+v, %v", logs, err)
	}
	t.Logf("%d jobs, each run once; by replica: %v", n, perReplica)
}

// blockingJob is a job that records each run, and with stopped runs until
// its context is cancelled and sends why; without, it returns at once.
func blockingJob(x *executions, name string, stopped chan<- error) JobFunc {
	return func(ctx context.Context, job Job, logf func(string, ...any)) error {
		x.record(name, job.ID)
		if stopped == nil {
			return nil
		}
		<-ctx.Done()
		select {
		case stopped <- context.Cause(ctx):
		default:
		}
		return ctx.Err()
	}
}

// TestClusterJobTakeover: the replica running a job dies (no renewal, no
// requeue); after the lease expires another replica runs the job, which
// then ends done.
func TestClusterJobTakeover(t *testing.T) {
	rs := redistest.Start(t)
	x := newExecutions()
	lease := 600 * time.Millisecond
	stopped := make(chan error, 4)
	a := startReplica(t, rs, "a", replicaConfig{lease: lease, funcs: map[string]JobFunc{"copy": blockingJob(x, "a", stopped)}})
	job, err := a.jobs.Submit(context.Background(), "copy", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	waitRan(t, x, "a "+job.ID)
	// b runs the job to the end: its handler returns at once.
	b := startReplica(t, rs, "b", replicaConfig{lease: lease, funcs: map[string]JobFunc{"copy": blockingJob(x, "b", nil)}})
	time.Sleep(2 * lease) // a keeps its lease by renewing it: b must not take the job meanwhile
	if runs := x.of(job.ID); len(runs) != 1 {
		t.Fatalf("job ran %v while its replica renewed its lease", runs)
	}
	killed := time.Now()
	a.kill(t)
	waitRan(t, x, "b "+job.ID)
	took := time.Since(killed)
	got := waitStatusOn(t, b, job.ID, StatusDone, 10*time.Second)
	if runs := x.of(job.ID); len(runs) != 2 || runs[1] != "b" {
		t.Errorf("runs %v, want a then b", runs)
	}
	if took > lease+3*time.Second {
		t.Errorf("taken over %v after the kill, lease %v", took, lease)
	}
	logs, _ := b.jobs.Logs(context.Background(), job.ID)
	if !logsContain(logs, "stopped renewing its lease") {
		t.Errorf("the job's log does not say it was taken over: %+v", logs)
	}
	t.Logf("taken over %v after the kill (lease %v); final %s", took.Round(time.Millisecond), lease, got.Status)
}

// TestClusterJobGracefulStop: a replica that stops (SIGTERM) requeues the job
// it interrupts; another replica runs it at once, without waiting for the
// lease to expire.
func TestClusterJobGracefulStop(t *testing.T) {
	rs := redistest.Start(t)
	x := newExecutions()
	lease := 5 * time.Second
	a := startReplica(t, rs, "a", replicaConfig{lease: lease, funcs: map[string]JobFunc{"copy": blockingJob(x, "a", make(chan error, 1))}})
	job, _ := a.jobs.Submit(context.Background(), "copy", nil, 0)
	waitRan(t, x, "a "+job.ID)
	b := startReplica(t, rs, "b", replicaConfig{lease: lease, funcs: map[string]JobFunc{"copy": blockingJob(x, "b", nil)}})
	start := time.Now()
	a.stop(t)
	waitRan(t, x, "b "+job.ID)
	if took := time.Since(start); took > lease/2 {
		t.Errorf("b took the requeued job after %v: it waited for the lease (%v)", took, lease)
	}
	waitStatusOn(t, b, job.ID, StatusDone, 10*time.Second)
}

// TestClusterCancel: a cancel sent to replica b's API stops the job running
// on replica a within a bounded time, and the job ends cancelled.
func TestClusterCancel(t *testing.T) {
	rs := redistest.Start(t)
	x := newExecutions()
	lease := 1500 * time.Millisecond // renewed, and its status read, every 500ms
	stopped := make(chan error, 1)
	a := startReplica(t, rs, "a", replicaConfig{lease: lease, funcs: map[string]JobFunc{"copy": blockingJob(x, "a", stopped)}})
	job, _ := a.jobs.Submit(context.Background(), "copy", nil, 3)
	waitRan(t, x, "a "+job.ID)
	b := startReplica(t, rs, "b", replicaConfig{lease: lease})
	var got Job
	start := time.Now()
	if st := b.call(t, "alice", http.MethodDelete, "/jobs/"+job.ID, nil, &got); st != http.StatusOK || got.Status != StatusCancel {
		t.Fatalf("cancel through b: %d %+v", st, got)
	}
	select {
	case err := <-stopped:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the job stopped for %v, want a cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the job on a was still running 5s after the cancel on b")
	}
	took := time.Since(start)
	if took > lease {
		t.Errorf("cancel reached the job after %v, want within a renewal (%v)", took, lease/3)
	}
	final := waitStatusOn(t, b, job.ID, StatusCancel, 5*time.Second)
	time.Sleep(2 * lease) // neither retried nor taken over
	if runs := x.of(job.ID); len(runs) != 1 || final.RetriesLeft != 3 {
		t.Errorf("after the cancel: runs %v, job %+v", runs, final)
	}
	if j, _ := b.jobs.Get(context.Background(), job.ID); j.Status != StatusCancel {
		t.Errorf("status %q after the cancel settled", j.Status)
	}
	t.Logf("cancel on b stopped the job on a after %v", took.Round(time.Millisecond))
}

// waitRan waits (10s at most) for a start of "replica job".
func waitRan(t *testing.T, x *executions, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-x.ran:
			if got == want {
				return
			}
		case <-deadline:
			t.Fatalf("no run %q within 10s", want)
		}
	}
}
