package mirror

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// jobUpdateTries bounds the compare-and-set rounds of one job update.
const jobUpdateTries = 20

// addJob stores a new job and makes it due, in one transaction.
func (s *redisStore) addJob(ctx context.Context, job Job) error {
	v, err := json.Marshal(job)
	if err != nil {
		return err
	}
	err = s.coord.Do(ctx, func(ctx context.Context, c redis.UniversalClient) error {
		_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, s.k.jobs, job.ID, v)
			p.ZAdd(ctx, s.k.due, redis.Z{Score: float64(job.ScheduledAt.UnixMilli()), Member: job.ID})
			return nil
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("store job %s: %w", job.ID, err)
	}
	return nil
}

// rawJob returns the stored JSON of job id.
func (s *redisStore) rawJob(ctx context.Context, id string) (string, error) {
	var v string
	err := s.coord.Do(ctx, func(ctx context.Context, c redis.UniversalClient) (err error) {
		v, err = c.HGet(ctx, s.k.jobs, id).Result()
		return err
	})
	if errors.Is(err, redis.Nil) {
		return "", ErrJobNotFound
	}
	if err != nil {
		return "", fmt.Errorf("read job %s: %w", id, err)
	}
	return v, nil
}

func (s *redisStore) getJob(ctx context.Context, id string) (Job, error) {
	v, err := s.rawJob(ctx, id)
	if err != nil {
		return Job{}, err
	}
	return decodeJob(id, v)
}

func decodeJob(id, v string) (Job, error) {
	var job Job
	if err := json.Unmarshal([]byte(v), &job); err != nil {
		return Job{}, fmt.Errorf("job %s: %w", id, err)
	}
	return job, nil
}

// listJobs reads every job (finished ones are pruned to a bounded number)
// and sorts them by id, newest first.
func (s *redisStore) listJobs(ctx context.Context, keep func(Job) bool, start, limit int) ([]Job, error) {
	var all []string
	err := s.coord.Do(ctx, func(ctx context.Context, c redis.UniversalClient) (err error) {
		all, err = c.HVals(ctx, s.k.jobs).Result()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	jobs := make([]Job, 0, len(all))
	for _, v := range all {
		var job Job
		if json.Unmarshal([]byte(v), &job) == nil && keep(job) {
			jobs = append(jobs, job)
		}
	}
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].ID > jobs[b].ID })
	out := []Job{}
	for i := start; i < len(jobs) && len(out) < limit; i++ {
		out = append(out, jobs[i])
	}
	return out, nil
}

// updateJob reads, changes and writes back job id with jobUpdateScript,
// again from the start when the job changed meanwhile.
func (s *redisStore) updateJob(ctx context.Context, id, lease string, change func(*Job) bool) (Job, error) {
	for range jobUpdateTries {
		old, err := s.rawJob(ctx, id)
		if err != nil {
			return Job{}, err
		}
		job, err := decodeJob(id, old)
		if err != nil || !change(&job) {
			return job, err
		}
		nv, err := json.Marshal(job)
		if err != nil {
			return job, err
		}
		var res string
		err = s.coord.Do(ctx, func(ctx context.Context, c redis.UniversalClient) (err error) {
			res, err = jobUpdateScript.Run(ctx, c, []string{s.k.jobs, s.k.due, s.k.running, s.k.leases, s.k.finished},
				id, old, nv, string(job.Status), job.ScheduledAt.UnixMilli(), lease, job.LastUpdated.UnixMilli()).Text()
			return err
		})
		switch {
		case err != nil:
			return job, fmt.Errorf("update job %s: %w", id, err)
		case res == "ok":
			return job, nil
		case res == "gone":
			return job, ErrJobNotFound
		case res == "lost":
			return job, fmt.Errorf("job %s: %w", id, errLeaseLost)
		}
	}
	return Job{}, fmt.Errorf("update job %s: changed by others %d times in a row", id, jobUpdateTries)
}

// claimJob runs claimScript with a fresh token as the lease.
func (s *redisStore) claimJob(ctx context.Context, now time.Time, ttl time.Duration) (*Job, string, time.Time, error) {
	token := rand.Text()
	stamp, _ := now.UTC().MarshalJSON()
	var res []any
	err := s.coord.Do(ctx, func(ctx context.Context, c redis.UniversalClient) (err error) {
		res, err = claimScript.Run(ctx, c, []string{s.k.jobs, s.k.due, s.k.running, s.k.leases},
			now.UnixMilli(), ttl.Milliseconds(), token, string(stamp[1:len(stamp)-1])).Slice()
		return err
	})
	if err != nil {
		return nil, "", time.Time{}, fmt.Errorf("claim a job: %w", err)
	}
	claimed, next, requeued := parseClaim(res)
	for _, id := range requeued {
		_ = s.appendLog(ctx, id, LogLine{Time: now.UTC(), Line: "the replica running this job stopped renewing its lease: waiting again"})
	}
	if claimed == "" {
		return nil, "", next, nil
	}
	job, err := decodeJob("claimed", claimed)
	if err != nil {
		return nil, "", time.Time{}, err
	}
	return &job, token, time.Time{}, nil
}

// parseClaim reads claimScript's answer.
func parseClaim(res []any) (claimed string, next time.Time, requeued []string) {
	str := func(i int) string {
		if i < len(res) {
			s, _ := res[i].(string)
			return s
		}
		return ""
	}
	claimed = str(0)
	if ms, err := strconv.ParseFloat(str(1), 64); err == nil {
		next = time.UnixMilli(int64(ms))
	}
	for i := 2; i < len(res); i++ {
		requeued = append(requeued, str(i))
	}
	return claimed, next, requeued
}

// renewJob runs renewScript.
func (s *redisStore) renewJob(ctx context.Context, id, lease string, ttl time.Duration) (Status, error) {
	var st string
	err := s.coord.Do(ctx, func(ctx context.Context, c redis.UniversalClient) (err error) {
		st, err = renewScript.Run(ctx, c, []string{s.k.leases, s.k.running, s.k.jobs}, id, lease, ttl.Milliseconds()).Text()
		return err
	})
	if err != nil {
		return "", fmt.Errorf("renew the lease of job %s: %w", id, err)
	}
	if st == "" {
		return "", fmt.Errorf("job %s: %w", id, errLeaseLost)
	}
	return Status(st), nil
}

func (s *redisStore) appendLog(ctx context.Context, id string, line LogLine) error {
	v, err := json.Marshal(line)
	if err != nil {
		return err
	}
	err = s.coord.Do(ctx, func(ctx context.Context, c redis.UniversalClient) error {
		return c.RPush(ctx, s.k.log(id), v).Err()
	})
	if err != nil {
		return fmt.Errorf("append to the log of job %s: %w", id, err)
	}
	return nil
}

func (s *redisStore) jobLogs(ctx context.Context, id string) ([]LogLine, error) {
	var all []string
	err := s.coord.Do(ctx, func(ctx context.Context, c redis.UniversalClient) (err error) {
		all, err = c.LRange(ctx, s.k.log(id), 0, -1).Result()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read the log of job %s: %w", id, err)
	}
	out := []LogLine{}
	for _, v := range all {
		var l LogLine
		if json.Unmarshal([]byte(v), &l) == nil {
			out = append(out, l)
		}
	}
	return out, nil
}

// pruneJobs drops the jobs that finished first, with their logs, beyond keep
// finished ones. Replicas pruning at once delete the same keys: harmless.
func (s *redisStore) pruneJobs(ctx context.Context, keep int) error {
	err := s.coord.Do(ctx, func(ctx context.Context, c redis.UniversalClient) error {
		n, err := c.ZCard(ctx, s.k.finished).Result()
		if err != nil || n <= int64(keep) {
			return err
		}
		ids, err := c.ZRange(ctx, s.k.finished, 0, n-int64(keep)-1).Result()
		if err != nil || len(ids) == 0 {
			return err
		}
		_, err = c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HDel(ctx, s.k.jobs, ids...)
			p.ZRem(ctx, s.k.finished, stringsToAny(ids)...)
			for _, id := range ids {
				p.Del(ctx, s.k.log(id))
			}
			return nil
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("prune finished jobs: %w", err)
	}
	return nil
}

func stringsToAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
