package mirror

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ocimirror/proxy/auth"
	"github.com/ocimirror/proxy/cluster"
	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/hosted"
	"github.com/ocimirror/proxy/internal/redistest"
)

// replica is one proxy's mirroring in a test cluster: its own Redis client
// (coordinator), queue, engine and API; Redis and the hosted repositories'
// directory are shared, as the bucket is in production.
type replica struct {
	*server
	name  string
	coord *cluster.Redis
	jobs  *Jobs

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// routeRedisLogs keeps go-redis's own messages (dial errors while a test has
// stopped Redis) off stderr; go-redis has one logger per process.
var routeRedisLogs sync.Once

// replicaConfig is how a test's replicas differ from the defaults.
type replicaConfig struct {
	hostedDir string             // shared hosted root (a new one when empty)
	funcs     map[string]JobFunc // extra job actions
	lease     time.Duration      // job lease (default 600ms)
	poll      time.Duration      // queue poll (default 50ms)
	interval  time.Duration      // poll schedule (default an hour)
}

// startReplica starts a replica on rs; it stops when the test ends.
func startReplica(t *testing.T, rs *redistest.Server, name string, rc replicaConfig) *replica {
	t.Helper()
	log := quietLog().WithField("replica", name)
	routeRedisLogs.Do(func() { cluster.RouteClientLogs(quietLog()) })
	coord := cluster.NewRedis(redis.NewClient(&redis.Options{Addr: rs.Addr, DialTimeout: 300 * time.Millisecond,
		ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond, MaxRetries: -1}),
		cluster.WithLogger(log))
	if rc.hostedDir == "" {
		rc.hostedDir = t.TempDir()
	}
	reg, err := hosted.New(context.Background(), rc.hostedDir, hosted.WithLogger(log), hosted.WithDelete(true))
	if err != nil {
		t.Fatal(err)
	}
	jobs := NewJobs(NewRedisStore(coord), WithJobLogger(log), WithJobLease(cmpOr(rc.lease, 600*time.Millisecond)),
		WithQueuePoll(cmpOr(rc.poll, 50*time.Millisecond)), WithJobWorkers(2),
		WithJobBackoff(func(int) time.Duration { return 20 * time.Millisecond }))
	for a, f := range rc.funcs {
		jobs.Handle(a, f)
	}
	ns := config.Hosted{Namespaces: []string{"dev"}}
	eng := NewEngine(jobs, NewCopier(WithLogger(log), WithRetries(2, 10*time.Millisecond)),
		Local{Host: "hosted.local", Transport: reg.Transport(), IsHosted: ns.IsHosted},
		WithEngineLogger(log), WithPollInterval(cmpOr(rc.interval, time.Hour)))
	authz, err := auth.New(config.Auth{Htpasswd: &config.Htpasswd{Realm: "r", Path: htpasswd(t, "alice")},
		Admins: []string{"alice"}}, auth.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	events, unsubscribe := reg.Subscribe(100)
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{name: name, coord: coord, jobs: jobs, cancel: cancel, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); jobs.Run(ctx) }()
	go func() { defer wg.Done(); eng.Run(ctx, events) }()
	go func() { wg.Wait(); close(r.done) }()
	srv := httptest.NewServer(NewAPI(eng, authz))
	r.server = &server{api: srv.URL + "/api/v0", reg: reg, engine: eng, handler: srv.Config.Handler}
	t.Cleanup(func() {
		srv.Close()
		r.stop(t)
		unsubscribe()
		coord.Close()
		reg.Close()
	})
	return r
}

// stop cancels the replica's workers and engine and waits (5s at most):
// a graceful stop, which requeues the jobs it interrupts.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	r.once.Do(r.cancel)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		t.Errorf("replica %s did not stop 5s after cancel", r.name)
	}
}

// kill is a crash as the cluster sees it: the replica's Redis client goes
// first (no renewal, no release, no requeue), then its goroutines stop.
func (r *replica) kill(t *testing.T) {
	t.Helper()
	r.coord.Close()
	r.stop(t)
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// executions counts the runs of each job, by replica.
type executions struct {
	mu   sync.Mutex
	runs map[string][]string // job id -> the replicas that ran it, in order
	ran  chan string         // each start, "replica job"
}

func newExecutions() *executions {
	return &executions{runs: map[string][]string{}, ran: make(chan string, 1000)}
}

func (x *executions) record(replica, id string) {
	x.mu.Lock()
	x.runs[id] = append(x.runs[id], replica)
	x.mu.Unlock()
	select {
	case x.ran <- replica + " " + id:
	default:
	}
}

func (x *executions) of(id string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]string(nil), x.runs[id]...)
}

// waitStatusOn polls job id on r until it has status, for at most d.
func waitStatusOn(t *testing.T, r *replica, id string, want Status, d time.Duration) Job {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		job, err := r.jobs.Get(context.Background(), id)
		if err == nil && job.Status == want {
			return job
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: status %q (err %v) after %v, want %q", id, job.Status, err, d, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
