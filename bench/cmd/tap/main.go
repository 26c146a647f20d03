// Command tap is the benchmark's window on the upstream: a reverse proxy in front of
// the upstream registry that counts the requests and bytes it passes on and can hold
// its responses to a fixed rate, shared by all connections, like one network link.
//
//	tap -listen 127.0.0.1:PORT -upstream http://127.0.0.1:PORT2
//
// Control (not forwarded):
//
//	GET /_tap/stats        counts since the last reset, as JSON
//	GET /_tap/reset        zero the counts
//	GET /_tap/rate?mib=N   limit responses to N MiB/s in total (0: unlimited)
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	upstream := flag.String("upstream", "", "upstream base URL")
	flag.Parse()
	target, err := url.Parse(*upstream)
	if err != nil || target.Host == "" {
		log.Fatalf("tap: -upstream %q: need a URL", *upstream)
	}
	t := &tap{counts: map[string]int64{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
		},
		Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/_tap/stats", t.stats)
	mux.HandleFunc("/_tap/reset", t.reset)
	mux.HandleFunc("/_tap/rate", t.setRate)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w, lim: &t.lim}
		rp.ServeHTTP(cw, r)
		t.record(r.Method+" "+kind(r.URL.Path), cw.n)
	})
	log.Printf("tap: %s -> %s", *listen, target)
	log.Fatal(http.ListenAndServe(*listen, mux))
}

// kind names the registry endpoint of a path: manifest, blob, upload or other.
func kind(path string) string {
	for _, k := range []string{"manifests", "blobs/uploads", "blobs", "tags"} {
		if strings.Contains(path, "/"+k+"/") {
			return strings.TrimSuffix(k, "s")
		}
	}
	return "other"
}

type tap struct {
	mu     sync.Mutex
	counts map[string]int64 // "GET blob" -> requests
	bytes  int64            // response body bytes passed on
	lim    limiter
}

func (t *tap) record(key string, n int64) {
	t.mu.Lock()
	t.counts[key]++
	t.bytes += n
	t.mu.Unlock()
}

func (t *tap) stats(w http.ResponseWriter, _ *http.Request) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var total int64
	for _, n := range t.counts {
		total += n
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"requests": total, "by_kind": t.counts, "bytes": t.bytes})
}

func (t *tap) reset(w http.ResponseWriter, _ *http.Request) {
	t.mu.Lock()
	t.counts, t.bytes = map[string]int64{}, 0
	t.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (t *tap) setRate(w http.ResponseWriter, r *http.Request) {
	mib, err := strconv.ParseFloat(r.URL.Query().Get("mib"), 64)
	if err != nil || mib < 0 {
		http.Error(w, "want ?mib=N (N >= 0)", http.StatusBadRequest)
		return
	}
	t.lim.set(mib * (1 << 20))
	w.WriteHeader(http.StatusNoContent)
}

// limiter spaces writes out so that all connections together send at most rate
// bytes per second. free is the (virtual) time the link is next idle.
type limiter struct {
	mu   sync.Mutex
	rate float64 // bytes per second; 0 is unlimited
	free time.Time
}

func (l *limiter) set(rate float64) {
	l.mu.Lock()
	l.rate, l.free = rate, time.Time{}
	l.mu.Unlock()
}

// wait blocks until n more bytes may go out. A few milliseconds of idle link are
// credited, so sleeps that overshoot do not lower the average rate.
func (l *limiter) wait(n int) {
	l.mu.Lock()
	if l.rate == 0 {
		l.mu.Unlock()
		return
	}
	now := time.Now()
	if floor := now.Add(-5 * time.Millisecond); l.free.Before(floor) {
		l.free = floor
	}
	l.free = l.free.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	d := l.free.Sub(now)
	l.mu.Unlock()
	if d > 0 {
		time.Sleep(d)
	}
}

// countingWriter counts body bytes and paces them through the limiter.
type countingWriter struct {
	http.ResponseWriter
	lim *limiter
	n   int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	const chunk = 64 << 10
	var written int
	for len(p) > 0 {
		q := p[:min(len(p), chunk)]
		c.lim.wait(len(q))
		m, err := c.ResponseWriter.Write(q)
		written += m
		c.n += int64(m)
		if err != nil {
			return written, err
		}
		p = p[len(q):]
	}
	return written, nil
}

// Unwrap lets the reverse proxy flush the underlying writer.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
