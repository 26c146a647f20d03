package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"
)

func openTestDB(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// startJobs opens a queue on a new db and runs it until the test ends.
func startJobs(t *testing.T, funcs map[string]JobFunc) *Jobs {
	t.Helper()
	db := openTestDB(t, filepath.Join(t.TempDir(), "mirror.db"))
	j, err := OpenJobs(db, WithJobLogger(quietLog()), WithJobBackoff(func(int) time.Duration { return 10 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	for a, f := range funcs {
		j.Handle(a, f)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); j.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; db.Close() })
	return j
}

// waitStatus polls job id until it has status, for at most 5s.
func waitStatus(t *testing.T, j *Jobs, id string, want Status) Job {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		job, err := j.Get(context.Background(), id)
		if err == nil && job.Status == want {
			return job
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: status %q (err %v), want %q", id, job.Status, err, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestJobOutcomes(t *testing.T) {
	var flaky atomic.Int32
	j := startJobs(t, map[string]JobFunc{
		"ok": func(ctx context.Context, job Job, logf func(string, ...any)) error {
			logf("copied %s", job.Parameters["tag"])
			return nil
		},
		"flaky": func(ctx context.Context, job Job, logf func(string, ...any)) error {
			if flaky.Add(1) <= 2 {
				return errors.New("upstream 503")
			}
			return nil
		},
		"broken": func(context.Context, Job, func(string, ...any)) error {
			return fmt.Errorf("bad policy: %w", ErrPermanent)
		},
		"exhausted": func(context.Context, Job, func(string, ...any)) error { return errors.New("still down") },
		"panics":    func(context.Context, Job, func(string, ...any)) error { panic("boom") },
	})
	cases := []struct {
		action   string
		retries  int
		want     Status
		attempts int
		log      string // the last log line
	}{
		{"ok", 0, StatusDone, 0, "copied v1"},
		{"flaky", 3, StatusDone, 2, "retrying at"},
		{"broken", 3, StatusError, 0, "error: bad policy: permanent failure"},
		{"exhausted", 1, StatusError, 1, "error: still down"},
		{"panics", 3, StatusError, 0, "error: job panicked: boom: permanent failure"},
		{"unknown", 3, StatusError, 0, `error: no handler for action "unknown": permanent failure`},
	}
	for _, tc := range cases {
		t.Run(tc.action, func(t *testing.T) {
			job, err := j.Submit(context.Background(), tc.action, map[string]string{"tag": "v1"}, tc.retries)
			if err != nil {
				t.Fatal(err)
			}
			got := waitStatus(t, j, job.ID, tc.want)
			if got.Attempts != tc.attempts {
				t.Errorf("attempts %d, want %d", got.Attempts, tc.attempts)
			}
			logs, err := j.Logs(context.Background(), job.ID)
			if err != nil || len(logs) == 0 {
				t.Fatalf("logs: %v %v", logs, err)
			}
			var found bool
			for _, l := range logs {
				found = found || len(l.Line) >= len(tc.log) && l.Line[:len(tc.log)] == tc.log
			}
			if !found {
				t.Errorf("log %+v lacks %q", logs, tc.log)
			}
		})
	}
}

func TestJobCancelStopsIt(t *testing.T) {
	started, stopped := make(chan struct{}), make(chan error, 1)
	j := startJobs(t, map[string]JobFunc{"copy": func(ctx context.Context, _ Job, _ func(string, ...any)) error {
		close(started)
		<-ctx.Done() // a transfer that only ends when cancelled
		stopped <- ctx.Err()
		return ctx.Err()
	}})
	job, _ := j.Submit(context.Background(), "copy", nil, 3)
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("job did not start")
	}
	if _, err := j.Cancel(context.Background(), job.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-stopped:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("job saw %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancel did not stop the job")
	}
	got := waitStatus(t, j, job.ID, StatusCancel)
	if got.RetriesLeft != 3 {
		t.Errorf("a cancelled job was retried: %+v", got)
	}
	if _, err := j.Cancel(context.Background(), "nope"); !errors.Is(err, ErrJobNotFound) {
		t.Errorf("cancel unknown: %v", err)
	}
}

func TestJobsSurviveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mirror.db")
	db := openTestDB(t, path)
	j, err := OpenJobs(db, WithJobLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	waiting, _ := j.Submit(context.Background(), "copy", map[string]string{"n": "1"}, 0)
	crashed, _ := j.Submit(context.Background(), "copy", map[string]string{"n": "2"}, 0)
	// A process killed while running crashed leaves it marked running.
	if _, err := j.update(context.Background(), crashed.ID, "", func(x *Job) bool { x.Status = StatusRunning; return true }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	var ran atomic.Int32
	db = openTestDB(t, path)
	j, err = OpenJobs(db, WithJobLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	j.Handle("copy", func(context.Context, Job, func(string, ...any)) error { ran.Add(1); return nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); j.Run(ctx) }()
	defer func() { cancel(); <-done; db.Close() }()
	waitStatus(t, j, waiting.ID, StatusDone)
	waitStatus(t, j, crashed.ID, StatusDone)
	if ran.Load() != 2 {
		t.Errorf("ran %d jobs, want 2", ran.Load())
	}
}

func TestJobList(t *testing.T) {
	db := openTestDB(t, filepath.Join(t.TempDir(), "mirror.db"))
	defer db.Close()
	now := time.Unix(1_700_000_000, 0)
	j, err := OpenJobs(db, WithJobClock(func() time.Time { now = now.Add(time.Second); return now }))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i, a := range []string{"poll_mirror", "push_mirror_tag", "poll_mirror", "poll_mirror"} {
		job, _ := j.Submit(context.Background(), a, map[string]string{"i": fmt.Sprint(i)}, 0)
		ids = append(ids, job.ID)
	}
	j.Cancel(context.Background(), ids[2])
	cases := []struct {
		action       string
		status       Status
		start, limit int
		want         []string
	}{
		{"", "", 0, 10, []string{ids[3], ids[2], ids[1], ids[0]}},
		{"poll_mirror", "", 0, 10, []string{ids[3], ids[2], ids[0]}},
		{"poll_mirror", StatusWaiting, 0, 10, []string{ids[3], ids[0]}},
		{"", StatusCancel, 0, 10, []string{ids[2]}},
		{"", "", 1, 2, []string{ids[2], ids[1]}},
	}
	for _, tc := range cases {
		jobs, err := j.List(context.Background(), tc.action, tc.status, tc.start, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, job := range jobs {
			got = append(got, job.ID)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("List(%q, %q, %d, %d) = %v, want %v", tc.action, tc.status, tc.start, tc.limit, got, tc.want)
		}
	}
}
