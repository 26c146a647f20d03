package mirror

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"
)

func putJob(b *bolt.Bucket, job Job) error {
	v, err := json.Marshal(job)
	if err != nil {
		return err
	}
	return b.Put([]byte(job.ID), v)
}

// requeueRunning makes the jobs a previous process left running wait again:
// on one node, a job marked running at the start is one a crash interrupted.
func (s *boltStore) requeueRunning() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJobs)
		return b.ForEach(func(k, v []byte) error {
			var job Job
			if json.Unmarshal(v, &job) != nil || job.Status != StatusRunning {
				return nil
			}
			job.Status = StatusWaiting
			return putJob(b, job)
		})
	})
}

func (s *boltStore) addJob(_ context.Context, job Job) error {
	return s.db.Update(func(tx *bolt.Tx) error { return putJob(tx.Bucket(bucketJobs), job) })
}

func (s *boltStore) getJob(_ context.Context, id string) (Job, error) {
	var job Job
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketJobs).Get([]byte(id))
		if v == nil {
			return ErrJobNotFound
		}
		return json.Unmarshal(v, &job)
	})
	return job, err
}

// listJobs walks the bucket backwards: ids are time-ordered.
func (s *boltStore) listJobs(_ context.Context, keep func(Job) bool, start, limit int) ([]Job, error) {
	out := []Job{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketJobs).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			var job Job
			if json.Unmarshal(v, &job) != nil || !keep(job) {
				continue
			}
			if start > 0 {
				start--
				continue
			}
			out = append(out, job)
		}
		return nil
	})
	return out, err
}

// updateJob changes job id in one transaction. Leases mean nothing on one
// node: the process that claimed a job is the only one running it.
func (s *boltStore) updateJob(_ context.Context, id, _ string, change func(*Job) bool) (Job, error) {
	var job Job
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJobs)
		v := b.Get([]byte(id))
		if v == nil {
			return ErrJobNotFound
		}
		if err := json.Unmarshal(v, &job); err != nil {
			return err
		}
		if !change(&job) {
			return nil
		}
		return putJob(b, job)
	})
	return job, err
}

// claimJob takes the oldest due waiting job in key order (creation order).
func (s *boltStore) claimJob(_ context.Context, now time.Time, _ time.Duration) (*Job, string, time.Time, error) {
	var claimed *Job
	var next time.Time
	err := s.db.Update(func(tx *bolt.Tx) error {
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
	return claimed, "", next, err
}

// renewJob has no lease to renew; it reports the job's status.
func (s *boltStore) renewJob(ctx context.Context, id, _ string, _ time.Duration) (Status, error) {
	job, err := s.getJob(ctx, id)
	return job.Status, err
}

// appendLog keys each line by job id and the bucket's sequence, so a job's
// lines are together and in order.
func (s *boltStore) appendLog(_ context.Context, id string, line LogLine) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLogs)
		seq, _ := b.NextSequence()
		key := make([]byte, 0, len(id)+9)
		key = append(append(key, id...), '/')
		key = binary.BigEndian.AppendUint64(key, seq)
		v, err := json.Marshal(line)
		if err != nil {
			return err
		}
		return b.Put(key, v)
	})
}

func (s *boltStore) jobLogs(_ context.Context, id string) ([]LogLine, error) {
	out := []LogLine{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLogs).Cursor()
		prefix := []byte(id + "/")
		for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
			var l LogLine
			if json.Unmarshal(v, &l) == nil {
				out = append(out, l)
			}
		}
		return nil
	})
	return out, err
}

func hasPrefix(b, prefix []byte) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == string(prefix)
}

// pruneJobs keeps at most keep jobs: the oldest finished ones go first, with
// their logs.
func (s *boltStore) pruneJobs(_ context.Context, keep int) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, logs := tx.Bucket(bucketJobs), tx.Bucket(bucketLogs)
		if b.Stats().KeyN <= keep {
			return nil
		}
		excess := b.Stats().KeyN - keep
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
