package ui

import (
	"context"
	"sync"
	"time"
)

// Stats is one reading of the server's cumulative counters and gauges, as
// cmd/proxy reads them from its Prometheus registry.
type Stats struct {
	Requests          float64 // HTTP requests served (proxy_http_requests_total)
	Hits, Misses      float64 // manifest and blob requests by cache result
	Stale             float64 // served from cache because the upstream failed
	BytesFromCache    float64 // response bytes served from local storage
	BytesFromUpstream float64 // blob bytes fetched from upstreams
	UpstreamErrors    float64 // failed blob fills plus stale serves
	CacheSize         float64 // bytes in the cache index (a gauge)
	// FailedFills counts failed fills by upstream host, for its health.
	FailedFills map[string]float64
}

// StatsSource reads the current Stats.
type StatsSource interface {
	Stats() Stats
}

// StatsFunc adapts a func to StatsSource.
type StatsFunc func() Stats

// Stats calls f.
func (f StatsFunc) Stats() Stats { return f() }

// sample is a Stats reading and its time.
type sample struct {
	At time.Time
	Stats
}

// ring is a fixed-size ring of samples: bounded memory however long the
// server runs.
type ring struct {
	buf  []sample
	next int
	full bool
}

func newRing(n int) *ring { return &ring{buf: make([]sample, n)} }

func (r *ring) add(s sample) {
	r.buf[r.next] = s
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

// all returns the samples oldest first.
func (r *ring) all() []sample {
	if !r.full {
		return append([]sample(nil), r.buf[:r.next]...)
	}
	return append(append([]sample(nil), r.buf[r.next:]...), r.buf[:r.next]...)
}

// Ring sizes: an hour of 10s samples, and a day of samples every 5 minutes.
const (
	hourSamples  = 360
	daySamples   = 288
	dayEvery     = 5 * time.Minute
	sampleWindow = time.Hour
)

// sampler keeps the hour and day rings of the counters.
type sampler struct {
	src     StatsSource
	now     func() time.Time
	mu      sync.Mutex
	hour    *ring
	day     *ring
	lastDay time.Time
}

func newSampler(src StatsSource, now func() time.Time) *sampler {
	return &sampler{src: src, now: now, hour: newRing(hourSamples), day: newRing(daySamples)}
}

// run takes a sample at once and then every interval until ctx ends.
func (s *sampler) run(ctx context.Context, interval time.Duration) {
	s.take()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.take()
		}
	}
}

// take records the current stats in the hour ring, and in the day ring when
// the last day sample is dayEvery old.
func (s *sampler) take() {
	if s.src == nil {
		return
	}
	st := sample{At: s.now(), Stats: s.src.Stats()}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hour.add(st)
	if s.lastDay.IsZero() || st.At.Sub(s.lastDay) >= dayEvery {
		s.day.add(st)
		s.lastDay = st.At
	}
}

// snapshot returns both rings, oldest first.
func (s *sampler) snapshot() (hour, day []sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hour.all(), s.day.all()
}

// point is one value of a series at a time.
type point struct {
	At time.Time
	V  float64
}

// rates turns consecutive cumulative samples into per-second rates of the
// counter f (a counter that went down, a restart, counts as zero).
func rates(ss []sample, f func(Stats) float64) []point {
	var out []point
	for i := 1; i < len(ss); i++ {
		dt := ss[i].At.Sub(ss[i-1].At).Seconds()
		if dt <= 0 {
			continue
		}
		d := f(ss[i].Stats) - f(ss[i-1].Stats)
		if d < 0 {
			d = 0
		}
		out = append(out, point{ss[i].At, d / dt})
	}
	return out
}

// deltas is how much counter f grew from each sample to the next.
func deltas(ss []sample, f func(Stats) float64) []point {
	var out []point
	for i := 1; i < len(ss); i++ {
		d := f(ss[i].Stats) - f(ss[i-1].Stats)
		out = append(out, point{ss[i].At, max(d, 0)})
	}
	return out
}

// growth is how much counter f grew over the samples.
func growth(ss []sample, f func(Stats) float64) float64 {
	if len(ss) < 2 {
		return 0
	}
	return max(f(ss[len(ss)-1].Stats)-f(ss[0].Stats), 0)
}
