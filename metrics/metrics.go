// Package metrics defines the mirror's Prometheus metrics. The collectors live in a
// registry the caller owns (no global state); the packages that count receive a
// *Metrics, and a nil *Metrics counts nothing.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the counters the front end and the caches update.
type Metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	results       *prometheus.CounterVec
	servedBytes   *prometheus.CounterVec
	upstreamBytes *prometheus.CounterVec
	fills         *prometheus.CounterVec
	degraded      prometheus.Gauge
	evicted       *prometheus.CounterVec
	evictedBytes  prometheus.Counter
	peerBytes     prometheus.Counter
}

// New creates the metrics and registers them with reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proxy_http_requests_total", Help: "Requests by API route, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "proxy_http_request_duration_seconds", Help: "Time to serve a request, by API route.",
			Buckets: []float64{.001, .005, .02, .1, .5, 2, 10, 60, 300},
		}, []string{"route"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proxy_cache_requests_total", Help: "Manifest and blob requests by route and result (hit, miss, stale).",
		}, []string{"route", "result"}),
		servedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proxy_served_bytes_total", Help: "Response body bytes sent to clients, by result (hit: from local storage).",
		}, []string{"result"}),
		upstreamBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proxy_upstream_blob_bytes_total", Help: "Blob bytes fetched from each upstream.",
		}, []string{"upstream"}),
		fills: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proxy_blob_fills_total", Help: "Blob fills from each upstream, by outcome (ok, failed).",
		}, []string{"upstream", "outcome"}),
		degraded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "proxy_cluster_degraded", Help: "1 while Redis (cluster coordination) is unreachable and this replica fetches alone; 0 otherwise.",
		}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proxy_evicted_total", Help: "What this replica's eviction passes deleted: entries by kind (tag, manifest, link) and content (blob: a blob's or manifest's bytes, once per digest).",
		}, []string{"kind"}),
		evictedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "proxy_evicted_bytes_total", Help: "Bytes of content this replica's eviction passes deleted.",
		}),
		peerBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "proxy_peer_fill_bytes_total", Help: "Blob bytes this replica's fills streamed from another replica's fill in progress (cluster peer streaming).",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.results, m.servedBytes, m.upstreamBytes, m.fills, m.degraded,
		m.evicted, m.evictedBytes, m.peerBytes)
	return m
}

// Request counts one served request. result is "" for routes that are not
// cached content.
func (m *Metrics) Request(route, method string, code int, result string, bytes int64, took time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route).Observe(took.Seconds())
	if result != "" {
		m.results.WithLabelValues(route, result).Inc()
		m.servedBytes.WithLabelValues(result).Add(float64(bytes))
	}
}

// Fill counts one finished blob fill from upstream and the bytes it fetched.
func (m *Metrics) Fill(upstream string, bytes int64, err error) {
	if m == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = "failed"
	}
	m.fills.WithLabelValues(upstream, outcome).Inc()
	m.upstreamBytes.WithLabelValues(upstream).Add(float64(bytes))
}

// PeerBytes counts blob bytes a fill streamed from another replica.
func (m *Metrics) PeerBytes(n int64) {
	if m == nil {
		return
	}
	m.peerBytes.Add(float64(n))
}

// ClusterDegraded sets the proxy_cluster_degraded gauge.
func (m *Metrics) ClusterDegraded(degraded bool) {
	if m == nil {
		return
	}
	if degraded {
		m.degraded.Set(1)
	} else {
		m.degraded.Set(0)
	}
}

// Evicted counts what one eviction pass deleted: tag, manifest and blob link
// entries, and contents (blobs) of bytes in all.
func (m *Metrics) Evicted(tags, manifests, links, blobs int, bytes int64) {
	if m == nil {
		return
	}
	m.evicted.WithLabelValues("tag").Add(float64(tags))
	m.evicted.WithLabelValues("manifest").Add(float64(manifests))
	m.evicted.WithLabelValues("link").Add(float64(links))
	m.evicted.WithLabelValues("blob").Add(float64(blobs))
	m.evictedBytes.Add(float64(bytes))
}

// Handler serves the registry's metrics in the Prometheus text format.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}
