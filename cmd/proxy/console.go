package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/metrics"
	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
	"github.com/ocimirror/proxy/ui"
)

// consoleSampleInterval is how often the console samples the metrics for its
// charts.
const consoleSampleInterval = 10 * time.Second

// newConsole builds the web console (/ui/) over the cache's store and index,
// the hosted repositories, the mirroring API and the metrics registry, and
// starts its sampler until ctx ends.
func newConsole(ctx context.Context, cfg *config.Config, fr *front, ix *scheduler.Index, store *storage.Store,
	caches []*cache.Cache, reg *prometheus.Registry, top *metrics.TopRepos, log *logrus.Entry) (*ui.Console, error) {
	opts := ui.Options{
		Auth: fr.authz, Secret: cfg.HTTP.Secret, Catalog: newCatalog(cfg, store, fr.hostedStore, ix), MaxSize: int64(cfg.Proxy.MaxSize),
		Stats:     ui.StatsFunc(func() ui.Stats { return readStats(reg, ix) }),
		Upstreams: func() []ui.Upstream { return upstreamStates(caches) },
		TopPulls:  topPulls(top),
		Log:       log.WithField("component", "console"),
	}
	if fr.api != nil {
		opts.API = fr.api
	}
	c, err := ui.New(opts)
	if err != nil {
		return nil, fmt.Errorf("web console: %w", err)
	}
	c.Start(ctx, consoleSampleInterval)
	return c, nil
}

// withConsole serves /ui and /ui/... with the console, with a line per
// request in the log, and everything else with next.
func withConsole(next, console http.Handler, log *logrus.Entry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ui" && !strings.HasPrefix(r.URL.Path, ui.Prefix) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		console.ServeHTTP(sw, r)
		log.WithFields(logrus.Fields{"method": r.Method, "path": r.URL.Path, "status": sw.status,
			"duration": time.Since(start).Round(time.Microsecond).String(), "remote": r.RemoteAddr}).Debug("console request")
	})
}

// hostOf is the host of a registry URL ("" if it has none).
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// upstreamStates is the health each distinct upstream host's client keeps.
func upstreamStates(caches []*cache.Cache) []ui.Upstream {
	var out []ui.Upstream
	seen := map[string]bool{}
	for _, c := range caches {
		up := c.Upstream()
		if seen[up.Host()] {
			continue
		}
		seen[up.Host()] = true
		h := up.Health()
		out = append(out, ui.Upstream{Host: up.Host(), LastSuccess: h.LastSuccess, LastError: h.LastError,
			LastErrorAt: h.LastErrorAt, ConsecutiveFailures: h.ConsecutiveFailures,
			QuotaRemaining: h.Quota.Remaining, QuotaLimit: h.Quota.Limit, QuotaWindow: h.Quota.Window, QuotaAt: h.Quota.At})
	}
	return out
}

// topPulls reads the most pulled repositories from the front end's counter.
func topPulls(top *metrics.TopRepos) ui.TopPullsFunc {
	return func(window time.Duration, n int) []ui.RepoPulls {
		var out []ui.RepoPulls
		for _, r := range top.Top(window, n) {
			out = append(out, ui.RepoPulls{Name: r.Repo, Pulls: r.Pulls, Over: r.Over})
		}
		return out
	}
}

// readStats reads the console's counters from the metrics registry (the
// same numbers /metrics shows) and the cache size from the index.
func readStats(reg prometheus.Gatherer, ix *scheduler.Index) ui.Stats {
	st := ui.Stats{CacheSize: float64(ix.TotalSize()), FailedFills: map[string]float64{}}
	mfs, err := reg.Gather()
	if err != nil {
		logrus.WithError(err).Debug("console: gathering metrics") // partial results are still used
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			v := m.GetCounter().GetValue()
			switch mf.GetName() {
			case "proxy_http_requests_total":
				st.Requests += v
			case "proxy_cache_requests_total":
				switch labels["result"] {
				case "hit":
					st.Hits += v
				case "miss":
					st.Misses += v
				case "stale":
					st.Stale += v
					st.UpstreamErrors += v
				}
			case "proxy_served_bytes_total":
				if labels["result"] == "hit" || labels["result"] == "stale" {
					st.BytesFromCache += v
				}
			case "proxy_upstream_blob_bytes_total":
				st.BytesFromUpstream += v
			case "proxy_blob_fills_total":
				if labels["outcome"] == "failed" {
					st.UpstreamErrors += v
					st.FailedFills[labels["upstream"]] += v
				}
			}
		}
	}
	return st
}
