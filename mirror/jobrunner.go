package mirror

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Run runs jobs until ctx ends, then waits for the running ones, which see
// ctx cancelled (they will run again at the next start).
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
// submitted or the next retry is due (at most a minute).
func (j *Jobs) work(ctx context.Context) {
	for ctx.Err() == nil {
		job, next, err := j.claim()
		if err != nil {
			j.log.WithError(err).Error("job queue")
		}
		if job != nil {
			j.run(ctx, *job)
			continue
		}
		wait := time.Minute
		if !next.IsZero() {
			wait = min(max(next.Sub(j.now()), time.Millisecond), time.Minute)
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

// claim marks the oldest due waiting job running and returns it; with none
// due it returns when the next one is.
func (j *Jobs) claim() (*Job, time.Time, error) {
	var claimed *Job
	var next time.Time
	now := j.now()
	err := j.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJobs)
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var job Job
			if json.Unmarshal(v, &job) != nil || job.Status != StatusWaiting {
				continue
			}
			if job.ScheduledAt.After(now) {
				if next.IsZero() || job.ScheduledAt.Before(next) {
					next = job.ScheduledAt
				}
				continue
			}
			job.Status, job.LastUpdated = StatusRunning, now.UTC()
			claimed = &job
			return putJob(b, job)
		}
		return nil
	})
	return claimed, next, err
}

// run runs one claimed job and records how it ended.
func (j *Jobs) run(ctx context.Context, job Job) {
	j.mu.Lock()
	f := j.funcs[job.Action]
	jctx, cancel := context.WithCancel(ctx)
	j.running[job.ID] = cancel
	j.mu.Unlock()
	defer func() {
		j.mu.Lock()
		delete(j.running, job.ID)
		j.mu.Unlock()
		cancel()
	}()
	logf := func(format string, args ...any) { j.appendLog(job.ID, fmt.Sprintf(format, args...)) }
	var err error
	if f == nil {
		err = fmt.Errorf("no handler for action %q: %w", job.Action, ErrPermanent)
	} else {
		err = runSafely(jctx, f, job, logf)
	}
	if ctx.Err() != nil && err != nil {
		// Shutting down: the job runs again at the next start.
		_, _ = j.update(job.ID, func(x *Job) bool {
			if x.Status != StatusRunning {
				return false
			}
			x.Status = StatusWaiting
			return true
		})
		return
	}
	j.finish(job.ID, err, logf)
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
func (j *Jobs) finish(id string, err error, logf func(string, ...any)) {
	if err != nil {
		logf("error: %v", err)
	}
	job, uerr := j.update(id, func(x *Job) bool {
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
	j.prune()
}

// appendLog adds a line to a job's log.
func (j *Jobs) appendLog(id, line string) {
	_ = j.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLogs)
		seq, _ := b.NextSequence()
		key := make([]byte, 0, len(id)+9)
		key = append(append(key, id...), '/')
		key = binary.BigEndian.AppendUint64(key, seq)
		v, _ := json.Marshal(LogLine{Time: j.now().UTC(), Line: line})
		return b.Put(key, v)
	})
}

// prune removes the oldest finished jobs and their logs beyond the keep limit.
func (j *Jobs) prune() {
	_ = j.db.Update(func(tx *bolt.Tx) error {
		b, logs := tx.Bucket(bucketJobs), tx.Bucket(bucketLogs)
		if b.Stats().KeyN <= j.keep {
			return nil
		}
		excess := b.Stats().KeyN - j.keep
		var drop [][]byte
		c := b.Cursor()
		for k, v := c.First(); k != nil && len(drop) < excess; k, v = c.Next() {
			var job Job
			if json.Unmarshal(v, &job) == nil && (job.Status == StatusWaiting || job.Status == StatusRunning) {
				continue
			}
			drop = append(drop, append([]byte(nil), k...))
		}
		for _, k := range drop {
			_ = b.Delete(k)
			lc := logs.Cursor()
			prefix := append(append([]byte(nil), k...), '/')
			for lk, _ := lc.Seek(prefix); lk != nil && hasPrefix(lk, prefix); lk, _ = lc.Seek(prefix) {
				_ = logs.Delete(lk)
			}
		}
		return nil
	})
}
