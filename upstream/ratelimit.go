package upstream

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// rateLimit remembers the pull quota the upstream last announced, as Docker Hub
// does with "ratelimit-limit: 100;w=21600" and "ratelimit-remaining: 76;w=21600".
type rateLimit struct {
	limit, remaining atomic.Int64 // -1 until announced
	window           atomic.Int64 // of remaining, in nanoseconds
	at               atomic.Int64 // when remaining was announced, Unix nanoseconds; 0: never
	low              atomic.Bool  // a warning was logged; reset once above 10% again
}

// RateLimitRemaining returns the pulls the upstream said are left in its window,
// and false when it never said.
func (c *Client) RateLimitRemaining() (int64, bool) {
	n := c.rate.remaining.Load()
	return n, n >= 0
}

// quota is the last announced quota, for Health.
func (c *Client) quota() Quota {
	q := Quota{Limit: c.rate.limit.Load(), Remaining: c.rate.remaining.Load(), Window: time.Duration(c.rate.window.Load())}
	if ns := c.rate.at.Load(); ns != 0 {
		q.At = time.Unix(0, ns)
	}
	return q
}

// observeRateLimit records the quota headers of a response, and logs once when
// fewer than a tenth of the pulls are left.
func (c *Client) observeRateLimit(h http.Header) {
	rem, window, ok := ParseQuota(h.Get("RateLimit-Remaining"))
	if !ok {
		return
	}
	c.rate.remaining.Store(rem)
	c.rate.window.Store(int64(window))
	c.rate.at.Store(c.opts.now().UnixNano())
	limit, ok := quota(h.Get("RateLimit-Limit"))
	if !ok {
		return
	}
	c.rate.limit.Store(limit)
	if rem*10 < limit {
		if !c.rate.low.Swap(true) {
			c.log.WithField("remaining", rem).WithField("limit", limit).
				Warn("upstream pull rate limit running low: cached content keeps being served, misses may fail")
		}
	} else {
		c.rate.low.Store(false)
	}
}

// quota parses "76;w=21600" (or "76") into 76.
func quota(v string) (int64, bool) {
	n, _, ok := ParseQuota(v)
	return n, ok
}

// ParseQuota reads Docker Hub's "76;w=21600": 76 pulls left (or allowed) in a
// window of 21600 seconds. Without a window, a minute is assumed.
func ParseQuota(v string) (n int64, window time.Duration, ok bool) {
	num, params, _ := strings.Cut(v, ";")
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 {
		return 0, 0, false
	}
	window = time.Minute
	for p := range strings.SplitSeq(params, ";") {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if k == "w" {
			if secs, err := strconv.ParseInt(val, 10, 64); err == nil && secs > 0 {
				window = time.Duration(secs) * time.Second
			}
		}
	}
	return n, window, true
}
