package upstream

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Health is what the client saw of its upstream: when a request last got an
// answer, the last request that failed and why, how many failed in a row, and
// the pull quota the upstream last announced. The web console shows it per
// upstream; it is kept by the client itself, so nothing has to infer it from
// the cache's fills.
type Health struct {
	// LastSuccess is when a request last got an answer that was not an error
	// (any 2xx or 3xx, or a 404 the caller judges); zero: none yet.
	LastSuccess time.Time
	// LastError is the last failure in words (never a credential: errors
	// carry no query string nor user info), and LastErrorAt its time; "" and
	// zero: none yet.
	LastError   string
	LastErrorAt time.Time
	// ConsecutiveFailures counts the requests that failed since the last
	// success: connection errors, timeouts, stalled bodies, 5xx and 429 after
	// the retries, and refused credentials.
	ConsecutiveFailures int64
	// Quota is the pull quota of the last response that announced one.
	Quota Quota
}

// Quota is a pull quota as Docker Hub announces it in RateLimit-Limit and
// RateLimit-Remaining ("100;w=21600").
type Quota struct {
	Limit     int64         // pulls allowed per window; -1: not announced
	Remaining int64         // pulls left in the window; -1: not announced
	Window    time.Duration // the window of Remaining (ParseQuota's)
	At        time.Time     // when the upstream said so; zero: never
}

// Known reports whether the upstream ever announced its remaining quota.
func (q Quota) Known() bool { return !q.At.IsZero() && q.Remaining >= 0 }

// health is the client's record behind Health. A success costs two atomic
// stores; only a failure takes the mutex, for its text.
type health struct {
	lastSuccess atomic.Int64 // Unix nanoseconds; 0: none
	failures    atomic.Int64

	mu          sync.Mutex
	lastError   string
	lastErrorAt time.Time
}

// Health returns the upstream's state as the client last saw it.
func (c *Client) Health() Health {
	h := Health{ConsecutiveFailures: c.health.failures.Load(), Quota: c.quota()}
	if ns := c.health.lastSuccess.Load(); ns != 0 {
		h.LastSuccess = time.Unix(0, ns)
	}
	c.health.mu.Lock()
	h.LastError, h.LastErrorAt = c.health.lastError, c.health.lastErrorAt
	c.health.mu.Unlock()
	return h
}

// recordOutcome notes how a request ended: an answer is a success, an error
// a failure, unless the caller cancelled it (a client that went away says
// nothing about the upstream; a deadline that ran out does).
func (c *Client) recordOutcome(ctx context.Context, err error) {
	switch {
	case err == nil:
		c.health.lastSuccess.Store(c.opts.now().UnixNano())
		c.health.failures.Store(0)
	case errors.Is(err, context.Canceled), errors.Is(ctx.Err(), context.Canceled):
		return
	default:
		c.recordFailure(err)
	}
}

// recordFailure notes a failed request and its error.
func (c *Client) recordFailure(err error) {
	msg, now := err.Error(), c.opts.now()
	c.health.failures.Add(1)
	c.health.mu.Lock()
	c.health.lastError, c.health.lastErrorAt = msg, now
	c.health.mu.Unlock()
}
