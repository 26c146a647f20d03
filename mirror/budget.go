package mirror

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ocimirror/proxy/upstream"
	"github.com/sirupsen/logrus"
)

// The rate-limit budget: one per Copier, with a state per registry host that
// every copy, tag listing and HEAD to that host goes through. When a registry
// answers 429 (or 503) with Retry-After, nothing is sent to it until then; a 429
// without Retry-After pauses it for defaultPause. When Docker Hub announces
// "ratelimit-remaining: 0;w=21600", its pull quota is spent: manifest GETs (what
// Hub counts) wait for the window, while HEADs and blob transfers go on. A wait
// longer than the Copier's maximum fails at once with a *RateLimitError that says
// until when, so a job can be rescheduled instead of holding a goroutine for hours.

const (
	// defaultPause is how long a host is left alone after a 429 without Retry-After.
	defaultPause = 2 * time.Second
	// maxPause bounds Retry-After and quota windows kept, against absurd values.
	maxPause = 24 * time.Hour
)

// RateLimitError is returned for a request that would have to wait longer than
// the Copier's maximum wait (WithMaxWait) for a registry's rate limit to reset.
type RateLimitError struct {
	Host   string    // registry host, e.g. registry-1.docker.io
	Until  time.Time // when requests may go again
	Reason string    // what the registry said: "429 Retry-After 3600s", "ratelimit-remaining 0;w=21600"
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("registry %s is rate limiting (%s): no requests until %s",
		e.Host, e.Reason, e.Until.UTC().Format(time.RFC3339))
}

// budget holds the rate-limit state of every host a Copier talks to.
type budget struct {
	maxWait time.Duration
	log     *logrus.Entry

	mu    sync.Mutex
	hosts map[string]*hostBudget
}

// hostBudget is one registry host's state.
type hostBudget struct {
	until      time.Time // no request before this
	reason     string
	pullsUntil time.Time // no manifest GET before this (pull quota spent)
	pullReason string
}

func newBudget(maxWait time.Duration, log *logrus.Entry) *budget {
	return &budget{maxWait: maxWait, log: log, hosts: map[string]*hostBudget{}}
}

// transport returns next wrapped so that its requests keep to the budget.
func (b *budget) transport(next http.RoundTripper) http.RoundTripper {
	return &budgetTransport{b: b, next: next}
}

type budgetTransport struct {
	b    *budget
	next http.RoundTripper
}

func (t *budgetTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	if err := t.b.wait(req.Context(), host, isPull(req)); err != nil {
		if req.Body != nil {
			req.Body.Close() // a RoundTripper closes the body, even on errors
		}
		return nil, err
	}
	resp, err := t.next.RoundTrip(req)
	if err == nil {
		t.b.observe(host, resp)
	}
	return resp, err
}

// isPull tells whether req is what Docker Hub counts against its pull quota.
func isPull(req *http.Request) bool {
	return req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/manifests/")
}

// wait blocks until host may be sent a request (a pull when pull is true), or
// fails at once with a *RateLimitError when that is further off than maxWait.
// The wait ends early with ctx's error.
func (b *budget) wait(ctx context.Context, host string, pull bool) error {
	for range 100 { // each round waits out the budget as it is; a new 429 may extend it
		until, reason := b.until(host, pull)
		d := time.Until(until)
		if d <= 0 {
			return ctx.Err()
		}
		if d > b.maxWait {
			return &RateLimitError{Host: host, Until: until, Reason: reason}
		}
		tm := time.NewTimer(d)
		select {
		case <-ctx.Done():
			tm.Stop()
			return ctx.Err()
		case <-tm.C:
		}
	}
	return fmt.Errorf("registry %s kept extending its rate limit", host)
}

// until returns when host accepts requests (pulls when pull) again.
func (b *budget) until(host string, pull bool) (time.Time, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.hosts[host]
	if h == nil {
		return time.Time{}, ""
	}
	if pull && h.pullsUntil.After(h.until) {
		return h.pullsUntil, h.pullReason
	}
	return h.until, h.reason
}

// observe records what resp says about host's rate limit.
func (b *budget) observe(host string, resp *http.Response) {
	now := time.Now()
	var pause time.Duration
	var reason string
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		ra := resp.Header.Get("Retry-After")
		pause = retryAfter(ra, now)
		switch {
		case pause > 0:
			reason = fmt.Sprintf("%d Retry-After %s", resp.StatusCode, ra)
		case resp.StatusCode == http.StatusTooManyRequests:
			pause, reason = defaultPause, "429 without Retry-After"
		}
	}
	var quota time.Duration
	var quotaReason string
	if rem := resp.Header.Get("RateLimit-Remaining"); rem != "" {
		if n, w, ok := parseQuota(rem); ok && n == 0 {
			quota, quotaReason = w, "ratelimit-remaining "+rem
		}
	}
	if pause == 0 && quota == 0 {
		return
	}
	b.mu.Lock()
	h := b.hosts[host]
	if h == nil {
		h = &hostBudget{}
		b.hosts[host] = h
	}
	extended := false
	if t := now.Add(min(pause, maxPause)); pause > 0 && t.After(h.until) {
		h.until, h.reason, extended = t, reason, true
	}
	if t := now.Add(min(quota, maxPause)); quota > 0 && t.After(h.pullsUntil) {
		h.pullsUntil, h.pullReason, extended = t, quotaReason, true
	}
	until, pullsUntil := h.until, h.pullsUntil
	b.mu.Unlock()
	if extended && b.log != nil {
		b.log.WithFields(logrus.Fields{"host": host, "until": until.Format(time.RFC3339), "pulls_until": pullsUntil.Format(time.RFC3339)}).
			Warnf("registry is rate limiting (%s): requests to it wait", strings.Trim(reason+", "+quotaReason, ", "))
	}
}

// retryAfter reads a Retry-After value (upstream.ParseRetryAfter), at most
// maxPause.
func retryAfter(v string, now time.Time) time.Duration {
	return upstream.ParseRetryAfter(v, now, maxPause)
}

// parseQuota reads Docker Hub's "76;w=21600" (upstream.ParseQuota).
func parseQuota(v string) (int64, time.Duration, bool) { return upstream.ParseQuota(v) }
