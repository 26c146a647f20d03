package ui

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

// Upstream is one upstream's state as its registry client saw it.
type Upstream struct {
	Host string
	// LastSuccess is when a request last got an answer; zero: none yet.
	LastSuccess time.Time
	// LastError is the last failed request's error in words, at LastErrorAt.
	LastError   string
	LastErrorAt time.Time
	// ConsecutiveFailures counts the requests that failed since the last
	// success.
	ConsecutiveFailures int64
	// The pull quota of the last response that announced one (Docker Hub's
	// RateLimit-Limit and RateLimit-Remaining): Remaining and Limit are -1
	// when never announced; QuotaAt is when it was.
	QuotaRemaining, QuotaLimit int64
	QuotaWindow                time.Duration
	QuotaAt                    time.Time
}

// upstreamRow is an upstream on the dashboard: its health in words (never
// only a colour), why, and its quota as a bar.
type upstreamRow struct {
	Upstream
	Health      string // ok, failing, rate limited, quota low, no requests yet
	HealthClass string // ok, warn, bad, unknown: the badge's colour
	Detail      string // one sentence: why this health
	FailedHour  float64
	QuotaKnown  bool
	QuotaBar    template.HTML
	QuotaText   string // "76 of 100 pulls left per 6h"
}

// upstreamRowOf judges an upstream's health: failing while its last requests
// failed (rate limited when the last failure was a 429), rate limited or low
// when its last announced quota is spent or under a tenth, else ok.
func upstreamRowOf(u Upstream, failedHour float64) upstreamRow {
	row := upstreamRow{Upstream: u, FailedHour: failedHour, QuotaKnown: u.QuotaRemaining >= 0 && !u.QuotaAt.IsZero()}
	if row.QuotaKnown {
		row.QuotaText, row.QuotaBar = quotaOf(u)
	}
	switch {
	case u.LastSuccess.IsZero() && u.LastError == "":
		row.Health, row.HealthClass, row.Detail = "no requests yet", "unknown", "The server has not asked this upstream for anything since it started."
	case u.ConsecutiveFailures > 0:
		row.Health, row.HealthClass = "failing", "bad"
		if strings.Contains(u.LastError, "429 Too Many Requests") {
			row.Health = "rate limited"
		}
		row.Detail = fmt.Sprintf("The last %d request%s failed; cached content is served while it fails.",
			u.ConsecutiveFailures, plural(u.ConsecutiveFailures))
	case row.QuotaKnown && u.QuotaRemaining == 0:
		row.Health, row.HealthClass, row.Detail = "rate limited", "bad", "The upstream said no pulls are left: cache misses fail until its window moves on."
	case row.QuotaKnown && u.QuotaLimit > 0 && u.QuotaRemaining*10 < u.QuotaLimit:
		row.Health, row.HealthClass, row.Detail = "quota low", "warn", "Fewer than a tenth of the pulls are left in the upstream's window."
	default:
		row.Health, row.HealthClass, row.Detail = "ok", "ok", "The last request got an answer."
	}
	return row
}

// quotaOf is the quota in words and, when the limit is known, as a bar of
// what is left against it.
func quotaOf(u Upstream) (string, template.HTML) {
	window := roughDuration(u.QuotaWindow)
	if u.QuotaLimit <= 0 {
		return fmt.Sprintf("%d pulls left per %s", u.QuotaRemaining, window), ""
	}
	text := fmt.Sprintf("%d of %d pulls left per %s", u.QuotaRemaining, u.QuotaLimit, window)
	return text, barChart("pull quota of "+u.Host+": "+text, float64(u.QuotaLimit),
		part{"pulls left", "s1", float64(u.QuotaRemaining)})
}

func plural(n int64) string {
	if n == 1 {
		return ""
	}
	return "s"
}
