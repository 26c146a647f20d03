package mirror

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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

// DefaultJobLease is how long a claimed job stays a replica's without a
// renewal (a shared store): a replica that dies mid-job has its jobs run
// again by another replica this long after its last renewal.
const DefaultJobLease = 15 * time.Second

// Jobs is a persistent job queue with workers: jobs wait in the store until a
// worker claims them; failures are retried with backoff. On one node a crash
// leaves running jobs to run again at the next start; in a cluster (a shared
// store) a claimed job is leased to one replica, and a job whose lease
// expired runs again on another.
type Jobs struct {
	store   Store
	log     *logrus.Entry
	now     func() time.Time
	workers int
	backoff func(attempt int) time.Duration
	keep    int           // finished jobs kept (with their logs); older ones are pruned
	lease   time.Duration // a claimed job's lease (shared store)
	idle    time.Duration // the longest sleep between two looks at the queue
	paused  atomic.Bool   // the shared store is unreachable: no job is claimed
	mu      sync.Mutex
	funcs   map[string]JobFunc
	running map[string]context.CancelCauseFunc
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

// WithJobLease sets how long a claimed job is held without renewal in a
// shared store (default DefaultJobLease); it is renewed every third of that,
// at least every second.
func WithJobLease(d time.Duration) JobsOption {
	return func(j *Jobs) { j.lease = max(d, 30*time.Millisecond) }
}

// WithQueuePoll sets the longest a worker sleeps before looking at the queue
// again (default: a minute on one node, where a submit wakes the workers; a
// second with a shared store, where other replicas submit too).
func WithQueuePoll(d time.Duration) JobsOption {
	return func(j *Jobs) { j.idle = max(d, time.Millisecond) }
}

// OpenJobs opens the job queue in db, a single node's. Jobs a previous
// process left running are waiting again.
func OpenJobs(db *bolt.DB, opts ...JobsOption) (*Jobs, error) {
	s, err := newBoltStore(db)
	if err != nil {
		return nil, err
	}
	if err := s.requeueRunning(); err != nil {
		return nil, fmt.Errorf("open job queue: %w", err)
	}
	return NewJobs(s, opts...), nil
}

// NewJobs returns the job queue in store.
func NewJobs(store Store, opts ...JobsOption) *Jobs {
	j := &Jobs{
		store: store, log: logrus.NewEntry(logrus.StandardLogger()), now: time.Now, workers: 2, keep: 1000,
		backoff: func(n int) time.Duration { return min(time.Duration(1<<min(n, 10))*5*time.Second, 10*time.Minute) },
		lease:   DefaultJobLease, idle: time.Minute,
		funcs: map[string]JobFunc{}, running: map[string]context.CancelCauseFunc{}, wake: make(chan struct{}, 1),
	}
	if store.Shared() {
		j.idle = time.Second
	}
	for _, o := range opts {
		o(j)
	}
	return j
}

// Handle registers what runs jobs of action.
func (j *Jobs) Handle(action string, f JobFunc) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.funcs[action] = f
}

// Submit queues a job to run now, retried up to retries times.
func (j *Jobs) Submit(ctx context.Context, action string, params map[string]string, retries int) (Job, error) {
	now := j.now().UTC()
	job := Job{ID: newJobID(now), Action: action, Status: StatusWaiting, ScheduledAt: now, LastUpdated: now,
		Parameters: params, RetriesLeft: retries}
	if err := j.store.addJob(ctx, job); err != nil {
		return Job{}, fmt.Errorf("submit %s job: %w", action, err)
	}
	j.poke()
	return job, nil
}

// newJobID is time-ordered, so that job and policy ids sort oldest first.
func newJobID(t time.Time) string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixNano()))
	_, _ = rand.Read(b[8:])
	return hex.EncodeToString(b[:])
}

// Get returns the job id.
func (j *Jobs) Get(ctx context.Context, id string) (Job, error) {
	return j.store.getJob(ctx, id)
}

// List returns jobs newest first, those matching action and status when they
// are not empty, skipping start and returning at most limit.
func (j *Jobs) List(ctx context.Context, action string, status Status, start, limit int) ([]Job, error) {
	return j.store.listJobs(ctx, func(job Job) bool {
		return (action == "" || job.Action == action) && (status == "" || job.Status == status)
	}, start, limit)
}

// Logs returns the log of job id.
func (j *Jobs) Logs(ctx context.Context, id string) ([]LogLine, error) {
	if _, err := j.Get(ctx, id); err != nil {
		return nil, err
	}
	return j.store.jobLogs(ctx, id)
}

// Cancel stops job id: a waiting job will not run, a running one has its
// context cancelled, which stops its transfers: at once on this replica, at
// its next lease renewal on another. A finished job is left as it is.
func (j *Jobs) Cancel(ctx context.Context, id string) (Job, error) {
	job, err := j.update(ctx, id, "", func(job *Job) bool {
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
		cancel(context.Canceled)
	}
	j.mu.Unlock()
	return job, nil
}

// update applies change to job id, stamping the time of a change; change
// returns false to leave it unchanged. With a lease, see jobStore.updateJob.
func (j *Jobs) update(ctx context.Context, id, lease string, change func(*Job) bool) (Job, error) {
	return j.store.updateJob(ctx, id, lease, func(job *Job) bool {
		if !change(job) {
			return false
		}
		job.LastUpdated = j.now().UTC()
		return true
	})
}

func (j *Jobs) poke() {
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// Store returns the store the queue (and its engine's policies) live in.
func (j *Jobs) Store() Store { return j.store }
