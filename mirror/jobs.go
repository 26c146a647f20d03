package mirror

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"
)

// Status is where a job stands. The values are DTR's.
type Status string

const (
	StatusWaiting Status = "waiting"
	StatusRunning Status = "running"
	StatusDone    Status = "done"
	StatusError   Status = "error"
	StatusCancel  Status = "cancel"
)

// Job is one unit of mirroring work, stored so that it survives restarts.
type Job struct {
	ID          string            `json:"id"`
	Action      string            `json:"action"`
	Status      Status            `json:"status"`
	ScheduledAt time.Time         `json:"scheduledAt"`
	LastUpdated time.Time         `json:"lastUpdated"`
	Parameters  map[string]string `json:"parameters"`
	RetriesLeft int               `json:"retriesLeft"`
	Attempts    int               `json:"attempts"` // failed runs so far
	Error       string            `json:"error,omitempty"`
}

// LogLine is one line of a job's log.
type LogLine struct {
	Time time.Time `json:"time"`
	Line string    `json:"line"`
}

// JobFunc does a job. It writes what it copied, skipped or failed with logf,
// and honours ctx: cancelling a job cancels it. An error wrapping ErrPermanent
// is not retried.
type JobFunc func(ctx context.Context, job Job, logf func(format string, args ...any)) error

// ErrPermanent marks a job error that a retry cannot fix (a bad parameter, a
// policy that is gone).
var ErrPermanent = errors.New("permanent failure")

// ErrJobNotFound is returned for an unknown job id.
var ErrJobNotFound = errors.New("job not found")

var (
	bucketJobs = []byte("jobs")
	bucketLogs = []byte("joblogs")
)

// Jobs is a persistent job queue with workers: jobs wait in bbolt until a
// worker runs them; failures are retried with backoff; a crash leaves running
// jobs to run again at the next start.
type Jobs struct {
	db      *bolt.DB
	log     *logrus.Entry
	now     func() time.Time
	workers int
	backoff func(attempt int) time.Duration
	keep    int // finished jobs kept (with their logs); older ones are pruned
	mu      sync.Mutex
	funcs   map[string]JobFunc
	running map[string]context.CancelFunc
	wake    chan struct{}
}

// JobsOption configures Jobs.
type JobsOption func(*Jobs)

// WithJobWorkers sets how many jobs run at once (default 2).
func WithJobWorkers(n int) JobsOption { return func(j *Jobs) { j.workers = max(n, 1) } }

// WithJobClock sets the clock (tests).
func WithJobClock(now func() time.Time) JobsOption { return func(j *Jobs) { j.now = now } }

// WithJobBackoff sets the wait before retry number attempt (1, 2, ...).
func WithJobBackoff(f func(attempt int) time.Duration) JobsOption {
	return func(j *Jobs) { j.backoff = f }
}

// WithJobLogger sets the logger.
func WithJobLogger(l *logrus.Entry) JobsOption { return func(j *Jobs) { j.log = l } }

// OpenJobs opens the job queue in db. Jobs a previous process left running
// are waiting again.
func OpenJobs(db *bolt.DB, opts ...JobsOption) (*Jobs, error) {
	j := &Jobs{
		db: db, log: logrus.NewEntry(logrus.StandardLogger()), now: time.Now, workers: 2, keep: 1000,
		backoff: func(n int) time.Duration { return min(time.Duration(1<<min(n, 10))*5*time.Second, 10*time.Minute) },
		funcs:   map[string]JobFunc{}, running: map[string]context.CancelFunc{}, wake: make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(j)
	}
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketJobs)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketLogs); err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var job Job
			if json.Unmarshal(v, &job) != nil || job.Status != StatusRunning {
				return nil
			}
			job.Status = StatusWaiting
			return putJob(b, job)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("open job queue: %w", err)
	}
	return j, nil
}

// Handle registers what runs jobs of action.
func (j *Jobs) Handle(action string, f JobFunc) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.funcs[action] = f
}

// Submit queues a job to run now, retried up to retries times.
func (j *Jobs) Submit(action string, params map[string]string, retries int) (Job, error) {
	now := j.now().UTC()
	job := Job{ID: newJobID(now), Action: action, Status: StatusWaiting, ScheduledAt: now, LastUpdated: now,
		Parameters: params, RetriesLeft: retries}
	err := j.db.Update(func(tx *bolt.Tx) error { return putJob(tx.Bucket(bucketJobs), job) })
	if err != nil {
		return Job{}, fmt.Errorf("submit %s job: %w", action, err)
	}
	j.poke()
	return job, nil
}

// newJobID is time-ordered, so the jobs bucket iterates oldest first.
func newJobID(t time.Time) string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixNano()))
	_, _ = rand.Read(b[8:])
	return hex.EncodeToString(b[:])
}

func putJob(b *bolt.Bucket, job Job) error {
	v, err := json.Marshal(job)
	if err != nil {
		return err
	}
	return b.Put([]byte(job.ID), v)
}

// Get returns the job id.
func (j *Jobs) Get(id string) (Job, error) {
	var job Job
	err := j.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketJobs).Get([]byte(id))
		if v == nil {
			return ErrJobNotFound
		}
		return json.Unmarshal(v, &job)
	})
	return job, err
}

// List returns jobs newest first, those matching action and status when they
// are not empty, skipping start and returning at most limit.
func (j *Jobs) List(action string, status Status, start, limit int) ([]Job, error) {
	out := []Job{}
	err := j.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketJobs).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			var job Job
			if json.Unmarshal(v, &job) != nil || (action != "" && job.Action != action) || (status != "" && job.Status != status) {
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

// Logs returns the log of job id.
func (j *Jobs) Logs(id string) ([]LogLine, error) {
	if _, err := j.Get(id); err != nil {
		return nil, err
	}
	out := []LogLine{}
	err := j.db.View(func(tx *bolt.Tx) error {
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

// Cancel stops job id: a waiting job will not run, a running one has its
// context cancelled, which stops its transfers. A finished job is left as it
// is.
func (j *Jobs) Cancel(id string) (Job, error) {
	job, err := j.update(id, func(job *Job) bool {
		if job.Status != StatusWaiting && job.Status != StatusRunning {
			return false
		}
		job.Status = StatusCancel
		return true
	})
	if err != nil {
		return job, err
	}
	j.mu.Lock()
	if cancel, ok := j.running[id]; ok {
		cancel()
	}
	j.mu.Unlock()
	return job, nil
}

// update applies change to job id in one transaction; change returns false to
// leave it unchanged.
func (j *Jobs) update(id string, change func(*Job) bool) (Job, error) {
	var job Job
	err := j.db.Update(func(tx *bolt.Tx) error {
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
		job.LastUpdated = j.now().UTC()
		return putJob(b, job)
	})
	return job, err
}

func (j *Jobs) poke() {
	select {
	case j.wake <- struct{}{}:
	default:
	}
}
