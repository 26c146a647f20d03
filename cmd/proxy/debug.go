package main

import (
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/metrics"
	"github.com/ocimirror/proxy/scheduler"
)

// newRegistry returns the metrics registry: the Go runtime and process, the
// front end's and caches' counters, and gauges read from the index and caches.
func newRegistry(ix *scheduler.Index) (*prometheus.Registry, *metrics.Metrics) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "proxy_cache_size_bytes",
			Help: "Bytes of content in the cache index (shared content counted once)."},
			func() float64 { return float64(ix.TotalSize()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "proxy_cache_items",
			Help: "Tags, manifests and blob links in the cache index."},
			func() float64 { return float64(ix.Len()) }),
	)
	return reg, metrics.New(reg)
}

// registerCaches adds the gauges read from the caches: fills in progress, and
// each upstream's remaining pull quota where it announces one (Docker Hub).
func registerCaches(reg *prometheus.Registry, caches []*cache.Cache) {
	seen := map[string]bool{} // two upstreams may share a remote host: one series
	for _, c := range caches {
		up := c.Upstream()
		if seen[up.Host()] {
			continue
		}
		seen[up.Host()] = true
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "proxy_upstream_ratelimit_remaining",
			Help:        "Pulls the upstream said are left in its rate-limit window (-1: never said).",
			ConstLabels: prometheus.Labels{"upstream": up.Host()}}, func() float64 {
			n, _ := up.RateLimitRemaining()
			return float64(n)
		}))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "proxy_blob_fills_in_flight",
		Help: "Blob fills from upstreams in progress."}, func() float64 {
		n := 0
		for _, c := range caches {
			n += c.Fills()
		}
		return float64(n)
	}))
}

// rootHandler answers /healthz, /readyz and (without a debug listener) /metrics
// beside the registry API. Paths are matched exactly: a ServeMux would clean and
// redirect the API's paths instead of letting the API judge them.
func rootHandler(api http.Handler, reg *prometheus.Registry, root string, withMetrics bool) http.Handler {
	m := metrics.Handler(reg)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			_, _ = w.Write([]byte("ok\n"))
		case "/readyz":
			if err := storageWritable(root); err != nil {
				http.Error(w, "storage not writable", http.StatusServiceUnavailable)
				return
			}
			_, _ = w.Write([]byte("ok\n"))
		case "/metrics":
			if !withMetrics {
				api.ServeHTTP(w, r)
				return
			}
			m.ServeHTTP(w, r)
		default:
			api.ServeHTTP(w, r)
		}
	})
}

// storageWritable writes and removes a probe file in the storage root.
func storageWritable(root string) error {
	f, err := os.CreateTemp(filepath.Join(root, "_proxy"), "ready-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}

// serveDebug serves pprof and /metrics on the debug address.
func serveDebug(addr string, reg *prometheus.Registry, log *logrus.Entry) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/metrics", metrics.Handler(reg))
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.WithField("addr", addr).Info("debug server listening (pprof, metrics)")
	if err := srv.ListenAndServe(); err != nil {
		log.WithError(err).Error("debug server stopped")
	}
}
