package ui

import (
	"html/template"
	"net/http"
	"strings"
	"time"
)

// window is one time range of the dashboard's charts.
type window struct {
	Name          string // "last hour", "last day"
	ID            string // its heading's id: the name with dashes, "h-last-hour"
	Requests      template.HTML
	Errors        template.HTML
	Bytes         template.HTML
	RequestsTotal float64
	ErrorsTotal   float64
	FromCache     float64
	FromUpstream  float64
	HitRatio      float64
	HasHitRatio   bool
	BytesSplit    template.HTML
}

// dashboardData is the dashboard's model.
type dashboardData struct {
	page
	CacheSize   int64
	MaxSize     int64
	SizeBar     template.HTML
	SizeShare   float64
	Windows     []window
	Upstreams   []upstreamRow
	Top         []topWindow // nil: the server counts no pulls
	HitRatio    float64
	HasHitRatio bool
	Sampling    bool
}

// dashboard is the console's home: the cache at a glance.
func (c *Console) dashboard(w http.ResponseWriter, r *http.Request, s session) {
	d := dashboardData{page: c.base(s, "Dashboard", "dashboard"), MaxSize: c.opts.MaxSize, Sampling: c.opts.Stats != nil}
	hour, day := c.sampler.snapshot()
	now := c.now()
	var cur Stats
	if c.opts.Stats != nil {
		cur = c.opts.Stats.Stats()
	}
	d.CacheSize = int64(cur.CacheSize)
	if d.MaxSize > 0 {
		d.SizeShare = float64(d.CacheSize) / float64(d.MaxSize)
		d.SizeBar = barChart("cache size against its cap", float64(d.MaxSize), part{"cached", "s1", float64(d.CacheSize)})
	}
	if lookups := cur.Hits + cur.Misses + cur.Stale; lookups > 0 {
		d.HitRatio, d.HasHitRatio = (cur.Hits+cur.Stale)/lookups, true
	}
	d.Windows = []window{
		c.window("last hour", hour, now.Add(-time.Hour), now),
		c.window("last day", day, now.Add(-24*time.Hour), now),
	}
	if c.opts.Upstreams != nil {
		for _, u := range c.opts.Upstreams() {
			failed := growth(hour, func(s Stats) float64 { return s.FailedFills[u.Host] })
			d.Upstreams = append(d.Upstreams, upstreamRowOf(u, failed))
		}
	}
	if c.opts.TopPulls != nil {
		d.Top = topWindows(c.opts.TopPulls)
	}
	c.render(w, http.StatusOK, "dashboard", d)
}

// headingID is the id of a heading named name: "h-" and the name with its
// spaces made dashes, since an id holds no whitespace (aria-labelledby would
// read "h-last hour" as two ids).
func headingID(name string) string { return "h-" + strings.Join(strings.Fields(name), "-") }

// window draws one time range's charts from its samples.
func (c *Console) window(name string, ss []sample, from, to time.Time) window {
	var in []sample
	for _, s := range ss {
		if !s.At.Before(from) {
			in = append(in, s)
		}
	}
	req := func(s Stats) float64 { return s.Requests }
	errs := func(s Stats) float64 { return s.UpstreamErrors }
	fromCache := func(s Stats) float64 { return s.BytesFromCache }
	fromUp := func(s Stats) float64 { return s.BytesFromUpstream }
	w := window{Name: name, ID: headingID(name),
		Requests: lineChart("requests per second, "+name, from, to, perSecond, series{"requests/s", "s1", rates(in, req)}),
		Errors:   lineChart("upstream errors per sample, "+name, from, to, count, series{"upstream errors", "s3", deltas(in, errs)}),
		Bytes: lineChart("bytes per second served from cache and fetched upstream, "+name, from, to, bytesPerSecond,
			series{"from cache", "s1", rates(in, fromCache)}, series{"from upstream", "s2", rates(in, fromUp)}),
		RequestsTotal: growth(in, req), ErrorsTotal: growth(in, errs),
		FromCache: growth(in, fromCache), FromUpstream: growth(in, fromUp),
	}
	hits := growth(in, func(s Stats) float64 { return s.Hits + s.Stale })
	lookups := hits + growth(in, func(s Stats) float64 { return s.Misses })
	if lookups > 0 {
		w.HitRatio, w.HasHitRatio = hits/lookups, true
	}
	w.BytesSplit = barChart("bytes from cache against bytes from upstream, "+name, 0,
		part{"from cache", "s1", w.FromCache}, part{"from upstream", "s2", w.FromUpstream})
	return w
}
