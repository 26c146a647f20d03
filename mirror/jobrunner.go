package mirror

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ocimirror/proxy/cluster"
)

// Run runs jobs until ctx ends, then waits for the running ones, which see
// ctx cancelled (they wait again: on one node until the next start, in a
// cluster for any replica).
func (j *Jobs) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range j.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j.work(ctx)
		}()
	}
	wg.Wait()
}

// work takes due jobs one at a time; between jobs it sleeps until a job is
// submitted here or the next retry is due, at most the queue's idle time.
func (j *Jobs) work(ctx context.Context) {
	for ctx.Err() == nil {
		job, lease, next, err := j.store.claimJob(ctx, j.now(), j.lease)
		j.notePaused(err)
		if err != nil && !errors.Is(err, cluster.ErrUnavailable) && ctx.Err() == nil {
			j.log.WithError(err).Error("job queue")
		}
		if job != nil {
			j.run(ctx, *job, lease)
			continue
		}
		wait := j.idle
		if !next.IsZero() {
			wait = min(max(next.Sub(j.now()), time.Millisecond), j.idle)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-j.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// notePaused logs once when the shared store becomes unreachable (mirroring
// pauses on this replica; pulls are not concerned) and once when it answers
// again.
func (j *Jobs) notePaused(err error) {
	down := errors.Is(err, cluster.ErrUnavailable)
	if j.paused.CompareAndSwap(!down, down) {
		if down {
			j.log.WithError(err).Warn("mirroring paused on this replica: its policies and jobs are in redis, which is unreachable; pulls go on")
		} else {
			j.log.Info("mirroring resumed: redis reachable again")
		}
	}
}

// run runs one claimed job and records how it ended. With a lease (a shared
// store) the lease is renewed while the job runs; a lost lease stops the job
// and leaves its record to the replica that runs it now.
func (j *Jobs) run(ctx context.Context, job Job, lease string) {
	j.mu.Lock()
	f := j.funcs[job.Action]
	jctx, cancel := context.WithCancelCause(ctx)
	j.running[job.ID] = cancel
	j.mu.Unlock()
	defer func() {
		j.mu.Lock()
		delete(j.running, job.ID)
		j.mu.Unlock()
		cancel(nil)
	}()
	stopLease := func() bool { return false }
	if lease != "" {
		stopLease = j.keepLease(jctx, job.ID, lease, cancel)
	}
	logf := func(format string, args ...any) { j.appendLog(ctx, job.ID, fmt.Sprintf(format, args...)) }
	var err error
	if f == nil {
		err = fmt.Errorf("no handler for action %q: %w", job.Action, ErrPermanent)
	} else {
		err = runSafely(jctx, f, job, logf)
	}
	if stopLease() {
		j.log.WithField("job", job.ID).Warn("job lease lost: stopped here; it runs again where it is claimed next")
		return
	}
	if ctx.Err() != nil && err != nil {
		j.requeue(ctx, job.ID, lease)
		return
	}
	j.finish(ctx, job.ID, lease, err, logf)
}

// requeue makes a job that shutdown interrupted wait again: it runs at the
// next start, or at once on another replica.
func (j *Jobs) requeue(ctx context.Context, id, lease string) {
	_, err := j.update(context.WithoutCancel(ctx), id, lease, func(x *Job) bool {
		if x.Status != StatusRunning {
			return false
		}
		x.Status = StatusWaiting
		return true
	})
	if err != nil {
		j.log.WithError(err).WithField("job", id).Warn("interrupted job not requeued; it runs again when its lease expires")
	}
}

// runSafely turns a panic in a job into its error.
func runSafely(ctx context.Context, f JobFunc, job Job, logf func(string, ...any)) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("job panicked: %v: %w", p, ErrPermanent)
		}
	}()
	return f(ctx, job, logf)
}

// finish records a job's outcome: done, cancelled, retried later or failed.
func (j *Jobs) finish(ctx context.Context, id, lease string, err error, logf func(string, ...any)) {
	if err != nil {
		logf("error: %v", err)
	}
	ctx = context.WithoutCancel(ctx)
	job, uerr := j.update(ctx, id, lease, func(x *Job) bool {
		switch {
		case x.Status == StatusCancel:
		case err == nil:
			x.Status, x.Error = StatusDone, ""
		case x.RetriesLeft > 0 && !errors.Is(err, ErrPermanent) && !errors.Is(err, context.Canceled):
			x.RetriesLeft--
			x.Attempts++
			x.Status, x.Error = StatusWaiting, err.Error()
			x.ScheduledAt = j.now().UTC().Add(j.backoff(x.Attempts))
		default:
			x.Status, x.Error = StatusError, err.Error()
		}
		return true
	})
	if uerr != nil {
		j.log.WithError(uerr).WithField("job", id).Error("recording job outcome")
		return
	}
	if job.Status == StatusWaiting {
		logf("retrying at %s (%d retries left)", job.ScheduledAt.Format(time.RFC3339), job.RetriesLeft)
	}
	j.log.WithFields(map[string]any{"job": id, "action": job.Action, "status": job.Status}).Info("job finished")
	if err := j.store.pruneJobs(ctx, j.keep); err != nil {
		j.log.WithError(err).Warn("pruning finished jobs")
	}
}

// appendLog adds a line to a job's log; a job being cancelled still writes
// why it stopped.
func (j *Jobs) appendLog(ctx context.Context, id, line string) {
	err := j.store.appendLog(context.WithoutCancel(ctx), id, LogLine{Time: j.now().UTC(), Line: line})
	if err != nil {
		j.log.WithError(err).WithField("job", id).Debug("job log line lost")
	}
}
