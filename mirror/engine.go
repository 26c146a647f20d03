package mirror

import (
	"context"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

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
// kinds of job with the copy engine. Its policies are in its job queue's
// store: on one node, or shared by the replicas of a cluster.
type Engine struct {
	store    Store
	jobs     *Jobs
	copier   *Copier
	local    Local
	interval time.Duration
	log      *logrus.Entry
	now      func() time.Time
	nextPoll time.Time
	held     heldWork // push work waiting for the shared store to answer again
}

// EngineOption configures an Engine.
type EngineOption func(*Engine)

// WithPollInterval sets how often poll policies run (mirror.pollinterval).
func WithPollInterval(d time.Duration) EngineOption { return func(e *Engine) { e.interval = d } }

// WithEngineLogger sets the logger.
func WithEngineLogger(l *logrus.Entry) EngineOption { return func(e *Engine) { e.log = l } }

// NewEngine returns an engine running its jobs in jobs and keeping its
// policies in the same store: policies and jobs are shared, or local,
// together.
func NewEngine(jobs *Jobs, copier *Copier, local Local, opts ...EngineOption) *Engine {
	e := &Engine{store: jobs.store, jobs: jobs, copier: copier, local: local, interval: DefaultPollInterval,
		log: logrus.NewEntry(logrus.StandardLogger()), now: time.Now}
	for _, o := range opts {
		o(e)
	}
	jobs.Handle(ActionPoll, e.runPoll)
	jobs.Handle(ActionPush, e.runPush)
	return e
}

func (e *Engine) isHosted(repo string) bool { return e.local.IsHosted != nil && e.local.IsHosted(repo) }

// Run schedules poll jobs every interval and turns push events into push
// jobs until ctx ends. Push work that found the shared store unreachable is
// held, and submitted when it answers again.
func (e *Engine) Run(ctx context.Context, events <-chan hosted.Event) {
	next := e.nextPollAt(e.now())
	e.setNext(next)
	timer := time.NewTimer(next.Sub(e.now()))
	defer timer.Stop()
	retry := time.NewTicker(heldRetry)
	defer retry.Stop()
	for {
		var retryC <-chan time.Time
		if e.held.len() > 0 {
			retryC = retry.C
		}
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			slot := next
			if next = e.nextPollAt(e.now()); !next.After(slot) {
				next = slot.Add(e.interval) // the timer fired a hair before the wall clock's slot
			}
			e.setNext(next)
			timer.Reset(next.Sub(e.now()))
			e.schedulePoll(ctx, slot)
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			e.onEvent(ctx, ev)
		case <-retryC:
			e.submitHeld(ctx)
		}
	}
}

// onEvent submits a push job for every enabled push policy of the pushed
// repository whose tag rules the tag matches. What the shared store could
// not take is held for later.
func (e *Engine) onEvent(ctx context.Context, ev hosted.Event) {
	all, err := e.pushJobs(ctx, ev)
	if err != nil {
		if !e.hold(ev, nil, err) {
			e.log.WithError(err).Error("reading push mirroring policies")
		}
		return
	}
	for _, params := range all {
		if _, err := e.jobs.Submit(ctx, ActionPush, params, jobRetries); err != nil && !e.hold(ev, params, err) {
			e.log.WithError(err).WithField("policy", params["policy"]).Error("submitting push_mirror_tag")
		}
	}
}

// pushJobs returns the parameters of the push jobs an event makes: one per
// enabled push policy of the pushed repository whose tag rules the tag
// matches (license and platform rules are applied by the job, which reads
// the image).
func (e *Engine) pushJobs(ctx context.Context, ev hosted.Event) ([]map[string]string, error) {
	if ev.Action != "push" || ev.Tag == "" {
		return nil, nil
	}
	sps, err := e.store.listPolicies(ctx, Push, ev.Repo)
	if err != nil {
		return nil, err
	}
	var out []map[string]string
	for _, sp := range sps {
		p := sp.Policy
		if p.Enabled && MatchTag(p.Rules, ev.Tag) {
			out = append(out, map[string]string{"policy": p.ID, "tag": ev.Tag, "digest": ev.Digest.String()})
		}
	}
	return out, nil
}
