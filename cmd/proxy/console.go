package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
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
	cat := &catalog{cache: store, hosted: fr.hostedStore, ix: ix, isHosted: cfg.Hosted.IsHosted,
		upstreamHosts: map[string]bool{}, defaultSource: hostOf(cfg.Proxy.RemoteURL)}
	for _, u := range cfg.Upstreams {
		cat.upstreamHosts[u.Host] = true
	}
	opts := ui.Options{
		Auth: fr.authz, Secret: cfg.HTTP.Secret, Catalog: cat, MaxSize: int64(cfg.Proxy.MaxSize),
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

// catalog is the console's view of the repositories: the cache's store and
// access index, and the hosted repositories' store.
type catalog struct {
	cache         *storage.Store
	hosted        *storage.Store // nil without hosted repositories
	ix            *scheduler.Index
	isHosted      func(string) bool
	upstreamHosts map[string]bool // further upstreams: their repositories are stored under their host
	defaultSource string          // the default upstream's host
}

// source is the upstream a cached repository is a cache of.
func (c *catalog) source(repo string) string {
	first, _, _ := strings.Cut(repo, "/")
	if c.upstreamHosts[first] {
		return first
	}
	return c.defaultSource
}

// Repositories lists the hosted repositories, then the cached ones, with
// their tag counts and last pulls.
func (c *catalog) Repositories(ctx context.Context) ([]ui.Repo, error) {
	var out []ui.Repo
	if c.hosted != nil {
		names, err := c.hosted.Repositories(ctx)
		if err != nil {
			return nil, fmt.Errorf("hosted repositories: %w", err)
		}
		for _, n := range names {
			tags, _ := c.hosted.Tags(ctx, n)
			out = append(out, ui.Repo{Name: n, Source: "hosted", Hosted: true, Tags: len(tags)})
		}
	}
	names, err := c.cache.Repositories(ctx)
	if err != nil {
		return nil, fmt.Errorf("cached repositories: %w", err)
	}
	for _, n := range names {
		tags, _ := c.cache.Tags(ctx, n)
		r := ui.Repo{Name: n, Source: c.source(n), Tags: len(tags)}
		for _, t := range tags {
			if e, ok := c.ix.Get(scheduler.Key{Kind: scheduler.KindTag, Repo: n, Tag: t}); ok && e.LastAccess.After(r.LastPull) {
				r.LastPull = e.LastAccess
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// Repo describes a repository's tags from its stored manifests.
func (c *catalog) Repo(ctx context.Context, name string) (ui.RepoDetail, error) {
	st, hosted := c.cache, false
	if c.isHosted != nil && c.isHosted(name) {
		if c.hosted == nil {
			return ui.RepoDetail{}, ui.ErrNotFound
		}
		st, hosted = c.hosted, true
	}
	tags, err := st.Tags(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return ui.RepoDetail{}, ui.ErrNotFound
	}
	if err != nil {
		return ui.RepoDetail{}, fmt.Errorf("tags of %s: %w", name, err)
	}
	d := ui.RepoDetail{Repo: ui.Repo{Name: name, Hosted: hosted, Tags: len(tags), Source: "hosted"}}
	if !hosted {
		d.Source = c.source(name)
	}
	for _, t := range tags {
		tag := describeTag(ctx, st, name, t)
		if !hosted {
			if e, ok := c.ix.Get(scheduler.Key{Kind: scheduler.KindTag, Repo: name, Tag: t}); ok {
				tag.LastPull, tag.Expires = e.LastAccess, e.Expires
				if e.LastAccess.After(d.LastPull) {
					d.LastPull = e.LastAccess
				}
			}
		}
		d.TagList = append(d.TagList, tag)
	}
	return d, nil
}

// manifestJSON is what the console reads of a manifest or index.
type manifestJSON struct {
	Config    descriptorJSON   `json:"config"`
	Layers    []descriptorJSON `json:"layers"`
	Manifests []struct {
		descriptorJSON
		Platform *struct {
			OS           string `json:"os"`
			Architecture string `json:"architecture"`
			Variant      string `json:"variant"`
		} `json:"platform"`
	} `json:"manifests"`
}

type descriptorJSON struct {
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"size"`
}

// describeTag resolves a tag and sizes what it points at: an image's
// manifest, config and layers; an index's platforms, each sized the same way
// when its manifest is stored here, else by its descriptor.
func describeTag(ctx context.Context, st *storage.Store, repo, tag string) ui.Tag {
	out := ui.Tag{Name: tag}
	d, err := st.ResolveTag(ctx, repo, tag)
	if err != nil {
		out.Error = "unreadable tag"
		return out
	}
	out.Digest = d.String()
	body, err := st.GetManifest(ctx, repo, d)
	if err != nil {
		out.Error = "manifest not stored"
		return out
	}
	out.MediaType = storage.ManifestMediaType(body)
	var m manifestJSON
	if err := json.Unmarshal(body, &m); err != nil {
		out.Error = "manifest not JSON"
		return out
	}
	out.Size = int64(len(body)) + m.Config.Size
	for _, l := range m.Layers {
		out.Size += l.Size
	}
	for _, child := range m.Manifests {
		if child.Platform != nil {
			p := child.Platform.OS + "/" + child.Platform.Architecture
			if child.Platform.Variant != "" {
				p += "/" + child.Platform.Variant
			}
			out.Platforms = append(out.Platforms, p)
		}
		size := child.Size
		if cb, err := st.GetManifest(ctx, repo, child.Digest); err == nil {
			var cm manifestJSON
			if json.Unmarshal(cb, &cm) == nil {
				size = int64(len(cb)) + cm.Config.Size
				for _, l := range cm.Layers {
					size += l.Size
				}
			}
		}
		out.Size += size
	}
	return out
}
