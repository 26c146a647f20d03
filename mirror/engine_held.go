package mirror

import (
	"context"
	"errors"
	"time"

	"github.com/ocimirror/proxy/cluster"
	"github.com/ocimirror/proxy/hosted"
)

// heldRetry is how often held push work is tried again.
const heldRetry = time.Second

// maxHeld bounds the push work a replica holds while the shared store is
// unreachable; beyond it the oldest is dropped (and logged).
const maxHeld = 10000

// heldWork is push work that found the shared store unreachable: events
// whose policies could not be read, and push jobs that could not be
// submitted. Only Engine.Run's goroutine touches it.
type heldWork struct {
	items   []heldItem
	dropped int
}

// heldItem is an event to evaluate again (params nil) or the push job of an
// evaluated event to submit.
type heldItem struct {
	ev     hosted.Event
	params map[string]string
}

func (h *heldWork) len() int { return len(h.items) }

// hold keeps the work for later when err says the shared store is
// unreachable, and reports whether it did.
func (e *Engine) hold(ev hosted.Event, params map[string]string, err error) bool {
	if !errors.Is(err, cluster.ErrUnavailable) {
		return false
	}
	if len(e.held.items) >= maxHeld {
		e.held.items = e.held.items[1:]
		e.held.dropped++
		e.log.WithField("dropped", e.held.dropped).Warn("too much push mirroring work held while redis is unreachable: the oldest is dropped")
	}
	if len(e.held.items) == 0 {
		e.log.Warn("push mirroring held: redis unreachable; the jobs are submitted when it answers")
	}
	e.held.items = append(e.held.items, heldItem{ev: ev, params: params})
	return true
}

// submitHeld submits the held work in order, until the store fails again
// (what is left stays held, in order).
func (e *Engine) submitHeld(ctx context.Context) {
	n := 0
	for e.held.len() > 0 {
		it := e.held.items[0]
		if it.params == nil { // an event: its jobs take its place
			params, err := e.pushJobs(ctx, it.ev)
			if errors.Is(err, cluster.ErrUnavailable) {
				return
			}
			if err != nil {
				e.log.WithError(err).Error("reading push mirroring policies")
			}
			rest := e.held.items[1:]
			e.held.items = make([]heldItem, 0, len(params)+len(rest))
			for _, p := range params {
				e.held.items = append(e.held.items, heldItem{ev: it.ev, params: p})
			}
			e.held.items = append(e.held.items, rest...)
			continue
		}
		_, err := e.jobs.Submit(ctx, ActionPush, it.params, jobRetries)
		if errors.Is(err, cluster.ErrUnavailable) {
			return
		}
		if err != nil {
			e.log.WithError(err).WithField("policy", it.params["policy"]).Error("submitting push_mirror_tag")
		}
		e.held.items = e.held.items[1:]
		n++
	}
	e.log.WithField("jobs", n).Info("held push mirroring work submitted")
}
