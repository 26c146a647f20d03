package mirror

import (
	"context"
	"time"
)

// Cron is a scheduled job, as GET /api/v0/crons shows it.
type Cron struct {
	Action   string    `json:"action"`
	Schedule string    `json:"schedule"`
	NextRun  time.Time `json:"nextRun"`
}

// nextPollAt is when the scheduled poll after now is due. On one node it is
// an interval from now. With a shared store it is the next multiple of the
// interval (since Go's zero time, the same on every replica), so that all
// replicas aim at the same slot and firstInSlot lets exactly one submit it.
func (e *Engine) nextPollAt(now time.Time) time.Time {
	if !e.store.Shared() {
		return now.Add(e.interval)
	}
	return now.Truncate(e.interval).Add(e.interval)
}

// schedulePoll submits the scheduled poll of every policy for the slot due
// at slot: with a shared store only the first replica to claim the slot
// does. It submits nothing while the last scheduled poll has not finished:
// polls slower than the interval must not pile up.
func (e *Engine) schedulePoll(ctx context.Context, slot time.Time) {
	log := e.log.WithField("slot", slot.UTC().Format(time.RFC3339Nano))
	first, err := e.store.firstInSlot(ctx, "poll:"+slot.UTC().Format(time.RFC3339Nano), 2*e.interval)
	if err != nil {
		log.WithError(err).Warn("scheduled poll_mirror skipped: mirroring store unavailable")
		return
	}
	if !first {
		log.Debug("scheduled poll_mirror submitted by another replica")
		return
	}
	for _, st := range []Status{StatusWaiting, StatusRunning} {
		jobs, err := e.jobs.List(ctx, ActionPoll, st, 0, 100)
		if err != nil {
			log.WithError(err).Error("scheduling poll_mirror")
			return
		}
		for _, j := range jobs {
			if j.Parameters["policy"] == "" {
				log.WithField("job", j.ID).Info("previous scheduled poll_mirror still " + string(st) + "; not scheduling another")
				return
			}
		}
	}
	if _, err := e.jobs.Submit(ctx, ActionPoll, map[string]string{}, 0); err != nil {
		log.WithError(err).Error("scheduling poll_mirror")
	}
}

func (e *Engine) setNext(t time.Time) {
	e.jobs.mu.Lock()
	e.nextPoll = t.UTC()
	e.jobs.mu.Unlock()
}

// Crons lists the schedule. With a shared store every replica shows the same
// next run.
func (e *Engine) Crons() []Cron {
	e.jobs.mu.Lock()
	defer e.jobs.mu.Unlock()
	return []Cron{{Action: ActionPoll, Schedule: "@every " + e.interval.String(), NextRun: e.nextPoll}}
}
