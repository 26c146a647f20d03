package mirror

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"

	"github.com/ocimirror/proxy/hosted"
)

// The job actions, DTR's names.
const (
	ActionPoll = "poll_mirror"
	ActionPush = "push_mirror_tag"
)

// DefaultPollInterval is how often poll policies are evaluated.
const DefaultPollInterval = 30 * time.Minute

// jobRetries is how often a failed mirroring job is retried.
const jobRetries = 3

// Local is this server's hosted registry as the engine reaches it: in process,
// without client auth (the engine is trusted, the API that drives it is not).
type Local struct {
	Host      string            // a name for it in references, e.g. "hosted.local"
	Transport http.RoundTripper // serves its registry API
	IsHosted  func(repo string) bool
}

// Engine evaluates mirroring policies: it polls remote repositories on a
// schedule, turns pushes that match push policies into jobs, and runs both
// kinds of job with the copy engine.
type Engine struct {
	policies *policies
	jobs     *Jobs
	copier   *Copier
	local    Local
	interval time.Duration
	log      *logrus.Entry
	now      func() time.Time
	nextPoll time.Time
}

// EngineOption configures an Engine.
type EngineOption func(*Engine)

// WithPollInterval sets how often poll policies run (mirror.pollinterval).
func WithPollInterval(d time.Duration) EngineOption { return func(e *Engine) { e.interval = d } }

// WithEngineLogger sets the logger.
func WithEngineLogger(l *logrus.Entry) EngineOption { return func(e *Engine) { e.log = l } }

// NewEngine returns an engine storing policies in db, running jobs in jobs.
func NewEngine(db *bolt.DB, jobs *Jobs, copier *Copier, local Local, opts ...EngineOption) (*Engine, error) {
	ps, err := openPolicies(db)
	if err != nil {
		return nil, err
	}
	e := &Engine{policies: ps, jobs: jobs, copier: copier, local: local, interval: DefaultPollInterval,
		log: logrus.NewEntry(logrus.StandardLogger()), now: time.Now}
	for _, o := range opts {
		o(e)
	}
	jobs.Handle(ActionPoll, e.runPoll)
	jobs.Handle(ActionPush, e.runPush)
	return e, nil
}

func (e *Engine) isHosted(repo string) bool { return e.local.IsHosted != nil && e.local.IsHosted(repo) }

// Run schedules poll jobs every interval and turns push events into push
// jobs until ctx ends.
func (e *Engine) Run(ctx context.Context, events <-chan hosted.Event) {
	tick := time.NewTicker(e.interval)
	defer tick.Stop()
	e.setNext(e.now().Add(e.interval))
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			e.setNext(e.now().Add(e.interval))
			e.schedulePoll()
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			e.onEvent(ev)
		}
	}
}

// schedulePoll submits the scheduled poll of every policy, unless the last one
// has not finished: polls slower than the interval must not pile up.
func (e *Engine) schedulePoll() {
	for _, st := range []Status{StatusWaiting, StatusRunning} {
		jobs, err := e.jobs.List(ActionPoll, st, 0, 100)
		if err != nil {
			e.log.WithError(err).Error("scheduling poll_mirror")
			return
		}
		for _, j := range jobs {
			if j.Parameters["policy"] == "" {
				e.log.WithField("job", j.ID).Info("previous scheduled poll_mirror still " + string(st) + "; not scheduling another")
				return
			}
		}
	}
	if _, err := e.jobs.Submit(ActionPoll, map[string]string{}, 0); err != nil {
		e.log.WithError(err).Error("scheduling poll_mirror")
	}
}

// Cron is a scheduled job, as GET /api/v0/crons shows it.
type Cron struct {
	Action   string    `json:"action"`
	Schedule string    `json:"schedule"`
	NextRun  time.Time `json:"nextRun"`
}

func (e *Engine) setNext(t time.Time) {
	e.jobs.mu.Lock()
	e.nextPoll = t.UTC()
	e.jobs.mu.Unlock()
}

// Crons lists the schedule.
func (e *Engine) Crons() []Cron {
	e.jobs.mu.Lock()
	defer e.jobs.mu.Unlock()
	return []Cron{{Action: ActionPoll, Schedule: "@every " + e.interval.String(), NextRun: e.nextPoll}}
}

// onEvent submits a push job for every enabled push policy of the pushed
// repository whose tag rules the tag matches (license and platform rules are
// applied by the job, which reads the image).
func (e *Engine) onEvent(ev hosted.Event) {
	if ev.Action != "push" || ev.Tag == "" {
		return
	}
	sps, err := e.policies.list(Push, ev.Repo)
	if err != nil {
		e.log.WithError(err).Error("reading push mirroring policies")
		return
	}
	for _, sp := range sps {
		p := sp.Policy
		if !p.Enabled || !MatchTag(p.Rules, ev.Tag) {
			continue
		}
		params := map[string]string{"policy": p.ID, "tag": ev.Tag, "digest": ev.Digest.String()}
		if _, err := e.jobs.Submit(ActionPush, params, jobRetries); err != nil {
			e.log.WithError(err).WithField("policy", p.ID).Error("submitting push_mirror_tag")
		}
	}
}

// CreatePolicy validates p, connects to its remote with its credentials (the
// remote's error is the answer when that fails), stores it, and evaluates it
// now when initial is true; a poll policy created without initial evaluation
// records the remote's tags as they are, so only later changes are copied.
func (e *Engine) CreatePolicy(ctx context.Context, kind Kind, repo string, p Policy, initial bool) (Policy, error) {
	p.LocalRepository = repo
	p.normalize()
	if err := p.validate(); err != nil {
		return Policy{}, badRequest(err.Error())
	}
	if err := e.connect(ctx, p); err != nil {
		return Policy{}, err
	}
	now := e.now().UTC()
	p.ID, p.CreatedAt, p.UpdatedAt = newJobID(now), now, now
	sp := storedPolicy{Kind: kind, Policy: p}
	if kind == Poll && !initial {
		seen, err := e.remoteDigests(ctx, p)
		if err != nil {
			return Policy{}, connectError(err)
		}
		sp.Mirrored = seen
	}
	if err := e.policies.put(sp); err != nil {
		return Policy{}, err
	}
	if initial {
		if err := e.evaluateNow(sp); err != nil {
			return Policy{}, err
		}
	}
	return p, nil
}

// Connect validates p as a policy of repo and connects to its remote with its
// credentials, storing nothing.
func (e *Engine) Connect(ctx context.Context, repo string, p Policy) error {
	p.LocalRepository = repo
	p.normalize()
	if err := p.validate(); err != nil {
		return badRequest(err.Error())
	}
	return e.connect(ctx, p)
}

// evaluateNow submits the jobs that apply a new policy to what exists: a poll
// of its remote, or a push of every tag of its repository.
func (e *Engine) evaluateNow(sp storedPolicy) error {
	if sp.Kind == Poll {
		_, err := e.jobs.Submit(ActionPoll, map[string]string{"policy": sp.Policy.ID}, jobRetries)
		return err
	}
	tags, err := e.copier.Tags(context.Background(), e.localEndpoint(sp.Policy.LocalRepository))
	if err != nil {
		return fmt.Errorf("list tags of %s: %w", sp.Policy.LocalRepository, err)
	}
	for _, tag := range tags {
		if IsReferrersTag(tag) || !MatchTag(sp.Policy.Rules, tag) {
			continue
		}
		if _, err := e.jobs.Submit(ActionPush, map[string]string{"policy": sp.Policy.ID, "tag": tag}, jobRetries); err != nil {
			return err
		}
	}
	return nil
}

// UpdatePolicy replaces the settings of policy id with in. A masked or empty
// password with an unchanged username keeps the stored one. The remote is
// connected to only when in is enabled.
func (e *Engine) UpdatePolicy(ctx context.Context, id string, in Policy) (Policy, error) {
	old, err := e.policies.get(id)
	if err != nil {
		return Policy{}, err
	}
	in.ID, in.LocalRepository, in.CreatedAt, in.LastStatus = id, old.Policy.LocalRepository, old.Policy.CreatedAt, old.Policy.LastStatus
	if (in.Password == masked || in.Password == "") && in.Username == old.Policy.Username {
		in.Password = old.Policy.Password
	}
	in.normalize()
	if err := in.validate(); err != nil {
		return Policy{}, badRequest(err.Error())
	}
	if in.Enabled { // a disabled policy never reaches its remote: disabling works while it is down
		if err := e.connect(ctx, in); err != nil {
			return Policy{}, err
		}
	}
	in.UpdatedAt = e.now().UTC()
	sp, err := e.policies.update(id, func(sp *storedPolicy) error {
		if sp.Policy.RemoteHost != in.RemoteHost || sp.Policy.RemoteRepository != in.RemoteRepository {
			sp.Mirrored = nil // another remote: everything is new
		}
		sp.Policy = in
		return nil
	})
	return sp.Policy, err
}

// connectError is the 400 for a remote that refused or could not be reached,
// with its own words.
func connectError(err error) error {
	return &apiError{http.StatusBadRequest, "REMOTE_CONNECT_FAILED", "connecting to the remote registry failed: " + err.Error()}
}

// setStatus records how an evaluation of policy id went.
func (e *Engine) setStatus(id string, err error) {
	st := &PolicyStatus{Code: "SUCCESS", LastUpdated: e.now().UTC()}
	if err != nil {
		st.Code, st.Detail = "FAILED", err.Error()
	}
	_, uerr := e.policies.update(id, func(sp *storedPolicy) error { sp.Policy.LastStatus = st; return nil })
	if uerr != nil && !errors.Is(uerr, ErrPolicyNotFound) {
		e.log.WithError(uerr).WithField("policy", id).Error("recording policy status")
	}
}
