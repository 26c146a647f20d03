package mirror

import (
	"context"
	"errors"
	"time"
)

// Store keeps what the mirroring engine must not forget: policies, jobs and
// job logs. The bbolt store (NewBoltStore) keeps them in one replica's
// mirror.db; the Redis store (NewRedisStore) in the cluster's Redis, shared by
// every replica. Its methods are unexported: both implementations live here.
type Store interface {
	policyStore
	jobStore
	// Shared reports whether other replicas use the store too: jobs are then
	// claimed with a lease, and the poll schedule runs once per slot.
	Shared() bool
	// firstInSlot reports whether the caller is the first to ask for key
	// within ttl (one scheduled poll per interval across replicas). A store
	// that is not shared always answers true.
	firstInSlot(ctx context.Context, key string, ttl time.Duration) (bool, error)
}

// policyStore keeps mirroring policies.
type policyStore interface {
	// addPolicy stores sp unless a policy with its id exists; added says
	// whether it did.
	addPolicy(ctx context.Context, sp storedPolicy) (added bool, err error)
	getPolicy(ctx context.Context, id string) (storedPolicy, error)
	// updatePolicy applies change to policy id atomically (change may run
	// more than once when another replica changed the policy meanwhile).
	updatePolicy(ctx context.Context, id string, change func(*storedPolicy) error) (storedPolicy, error)
	deletePolicy(ctx context.Context, id string) error
	// listPolicies returns the policies of kind and of repo (any kind or
	// repository when empty), in creation order.
	listPolicies(ctx context.Context, kind Kind, repo string) ([]storedPolicy, error)
}

// jobStore is the job queue's storage: jobs, their logs, and the claim of a
// due job by one worker.
type jobStore interface {
	addJob(ctx context.Context, job Job) error
	getJob(ctx context.Context, id string) (Job, error)
	// listJobs returns the jobs keep accepts, newest first, skipping start
	// and returning at most limit.
	listJobs(ctx context.Context, keep func(Job) bool, start, limit int) ([]Job, error)
	// updateJob applies change to job id atomically; change returns false to
	// leave the job as it is (and may run more than once). With a lease, the
	// update is made only while the lease is the caller's (else
	// errLeaseLost), and a job that leaves the running state gives it up.
	updateJob(ctx context.Context, id, lease string, change func(*Job) bool) (Job, error)
	// claimJob marks the oldest due waiting job running and returns it with
	// a lease good for ttl; with none due, it returns when the next one is.
	// Jobs whose lease expired (their replica died) are waiting again first.
	claimJob(ctx context.Context, now time.Time, ttl time.Duration) (job *Job, lease string, next time.Time, err error)
	// renewJob extends a lease by ttl and returns the job's status (how a
	// cancel on another replica reaches the one running the job), or
	// errLeaseLost when the lease is no longer the caller's.
	renewJob(ctx context.Context, id, lease string, ttl time.Duration) (Status, error)
	appendLog(ctx context.Context, id string, line LogLine) error
	jobLogs(ctx context.Context, id string) ([]LogLine, error)
	// pruneJobs removes the oldest finished jobs and their logs beyond keep.
	pruneJobs(ctx context.Context, keep int) error
}

// errLeaseLost reports that a job's lease expired and may be another
// replica's: the job is no longer this replica's to run or to record.
var errLeaseLost = errors.New("job lease lost")
