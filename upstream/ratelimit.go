package upstream

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
)

// rateLimit remembers the pull quota the upstream last announced, as Docker Hub
// does with "ratelimit-limit: 100;w=21600" and "ratelimit-remaining: 76;w=21600".
type rateLimit struct {
	limit, remaining atomic.Int64 // -1 until announced
	low              atomic.Bool  // a warning was logged; reset once above 10% again
}

// RateLimitRemaining returns the pulls the upstream said are left in its window,
// and false when it never said.
func (c *Client) RateLimitRemaining() (int64, bool) {
	n := c.rate.remaining.Load()
	return n, n >= 0
}

// observeRateLimit records the quota headers of a response, and logs once when
// fewer than a tenth of the pulls are left.
func (c *Client) observeRateLimit(h http.Header) {
	rem, ok := quota(h.Get("RateLimit-Remaining"))
	if !ok {
		return
	}
	c.rate.remaining.Store(rem)
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
	if v == "" {
		return 0, false
	}
	n, _, _ := strings.Cut(v, ";")
	q, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
	if err != nil || q < 0 {
		return 0, false
	}
	return q, true
}
