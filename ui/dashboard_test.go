package ui

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestUpstreamHealthWords(t *testing.T) {
	now := time.Now()
	noQuota := Upstream{QuotaRemaining: -1, QuotaLimit: -1}
	with := func(u Upstream, f func(*Upstream)) Upstream { f(&u); return u }
	cases := []struct {
		name       string
		u          Upstream
		health     string
		class      string
		quotaText  string
		quotaShown bool
	}{
		{"never asked", noQuota, "no requests yet", "unknown", "", false},
		{"answering", with(noQuota, func(u *Upstream) { u.LastSuccess = now }), "ok", "ok", "", false},
		{"failing", with(noQuota, func(u *Upstream) {
			u.LastSuccess, u.LastError, u.LastErrorAt, u.ConsecutiveFailures = now.Add(-time.Hour), "dial tcp: connection refused", now, 4
		}), "failing", "bad", "", false},
		{"recovered", with(noQuota, func(u *Upstream) {
			u.LastSuccess, u.LastError, u.LastErrorAt = now, "502 Bad Gateway", now.Add(-time.Minute)
		}), "ok", "ok", "", false},
		{"429s", with(noQuota, func(u *Upstream) {
			u.LastError, u.LastErrorAt, u.ConsecutiveFailures = "GET x: 429 Too Many Requests", now, 1
		}), "rate limited", "bad", "", false},
		{"quota spent", Upstream{LastSuccess: now, QuotaRemaining: 0, QuotaLimit: 100, QuotaWindow: 6 * time.Hour, QuotaAt: now},
			"rate limited", "bad", "0 of 100 pulls left per 6h", true},
		{"quota low", Upstream{LastSuccess: now, QuotaRemaining: 9, QuotaLimit: 100, QuotaWindow: 6 * time.Hour, QuotaAt: now},
			"quota low", "warn", "9 of 100 pulls left per 6h", true},
		{"quota fine", Upstream{LastSuccess: now, QuotaRemaining: 76, QuotaLimit: 100, QuotaWindow: 6 * time.Hour, QuotaAt: now},
			"ok", "ok", "76 of 100 pulls left per 6h", true},
		{"remaining only", Upstream{LastSuccess: now, QuotaRemaining: 5, QuotaLimit: -1, QuotaWindow: time.Minute, QuotaAt: now},
			"ok", "ok", "5 pulls left per 1m", true},
	}
	for _, c := range cases {
		row := upstreamRowOf(c.u, 0)
		if row.Health != c.health || row.HealthClass != c.class || row.Detail == "" {
			t.Errorf("%s: %q (%s) %q, want %q (%s)", c.name, row.Health, row.HealthClass, row.Detail, c.health, c.class)
		}
		if row.QuotaKnown != c.quotaShown || row.QuotaText != c.quotaText {
			t.Errorf("%s: quota %v %q, want %q", c.name, row.QuotaKnown, row.QuotaText, c.quotaText)
		}
		if hasBar := row.QuotaBar != ""; hasBar != (c.quotaShown && c.u.QuotaLimit > 0) {
			t.Errorf("%s: quota bar %q", c.name, row.QuotaBar)
		}
	}
}

// TestDashboardShowsHealthAndTop: the dashboard names each upstream's health
// in words next to its facts, draws the quota as a bar, and lists the most
// pulled repositories with their counts.
func TestDashboardShowsHealthAndTop(t *testing.T) {
	h := newHarness(t)
	h.login(t, "alice")
	st, _, body := h.do(t, http.MethodGet, "/ui/", nil)
	if st != http.StatusOK {
		t.Fatalf("dashboard: %d", st)
	}
	text := regexp.MustCompile(`<[^>]+>`).ReplaceAllString(body, " ")
	text = strings.Join(strings.Fields(text), " ")
	for _, want := range []string{
		"registry-1.docker.io ok",
		"42 of 100 pulls left per 6h",
		"failing The last 3 requests failed",
		"Failures in a row 3",
		"502 Bad Gateway",
		"The last hour library/&lt;script&gt;",
		"5 pulls",
		"at least 12 pulls",
		"dev/app 1 pull",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the dashboard lacks %q:\n%s", want, text)
		}
	}
	if !strings.Contains(body, `<span class="badge bad">failing</span>`) || !strings.Contains(body, `aria-label="pull quota of registry-1.docker.io: 42 of 100 pulls left per 6h"`) {
		t.Errorf("no badge or quota bar:\n%s", body)
	}
	if !strings.Contains(body, `width="252.0"`) { // 42% of the 600-wide bar
		t.Error("the quota bar is not 42% full")
	}
}
