package access

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/internal/testregistry"
	"github.com/ocimirror/proxy/proxy"
	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
	"github.com/ocimirror/proxy/upstream"
)

// A pull is what a client does for an image it has never seen, against a warm
// mirror: GET the manifest by tag, GET the config, HEAD and GET every layer.
// With tagfreshness the tag is not revalidated upstream, so no request leaves
// the process: what is measured is the front end, the cache's hit path and,
// with the index on, Touch on every hit.
const (
	layers    = 3
	layerSize = 1 << 10 // small: the per-request cost shows, not the copy
)

// pullPaths returns the requests of one pull of repo:tag.
func pullPaths(b *testing.B, img v1.Image, repo, tag string) []request {
	m, err := img.Manifest()
	if err != nil {
		b.Fatal(err)
	}
	reqs := []request{{http.MethodGet, "/v2/" + repo + "/manifests/" + tag}, {http.MethodGet, "/v2/" + repo + "/blobs/" + m.Config.Digest.String()}}
	for _, l := range m.Layers {
		p := "/v2/" + repo + "/blobs/" + l.Digest.String()
		reqs = append(reqs, request{http.MethodHead, p}, request{http.MethodGet, p})
	}
	return reqs
}

type request struct{ method, path string }

// mirror builds a proxy handler over a fresh root, warmed by a pull, with
// the index on or off.
func mirror(b *testing.B, upstreamURL string, indexed bool, reqs []request) http.Handler {
	root := b.TempDir()
	store, err := storage.NewFilesystem(root)
	if err != nil {
		b.Fatal(err)
	}
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	log := logrus.NewEntry(quiet)
	up, err := upstream.New(upstreamURL, upstream.WithLogger(log))
	if err != nil {
		b.Fatal(err)
	}
	opts := []cache.Option{cache.WithLogger(log), cache.WithTagFreshness(time.Hour)}
	if indexed {
		ix, err := scheduler.Open(filepath.Join(root, "_proxy", "scheduler.db"), scheduler.WithLogger(log))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = ix.Close() })
		opts = append(opts, cache.WithIndex(ix))
	}
	c := cache.New(store, up, opts...)
	b.Cleanup(c.Close)
	h := proxy.New(c, proxy.WithLogger(log), proxy.WithAccessLog(false))
	pull(b, h, reqs) // fill
	pull(b, h, reqs) // revalidates the tag once: fresh for the hour after
	for deadline := time.Now().Add(10 * time.Second); c.Fills() > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("fills did not finish within 10s")
		}
	}
	return h
}

// pull runs one pull against h in process.
func pull(b *testing.B, h http.Handler, reqs []request) {
	for _, r := range reqs {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequestWithContext(context.Background(), r.method, r.path, nil))
		if w.Code != http.StatusOK {
			b.Fatalf("%s %s: %d %s", r.method, r.path, w.Code, w.Body.String())
		}
	}
}

// pullHTTP runs one pull against the server at base over client.
func pullHTTP(b *testing.B, client *http.Client, base string, reqs []request) {
	for _, r := range reqs {
		req, _ := http.NewRequest(r.method, base+r.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%s %s: %d", r.method, r.path, resp.StatusCode)
		}
	}
}

// BenchmarkPull measures warm pulls with the index off and on, through the
// handler in process (where the recording path's share is largest) and over
// loopback HTTP, by one client and by GOMAXPROCS clients. Every iteration
// pulls from both mirrors, in alternating order, and times each: on a machine
// whose speed drifts, only measurements taken side by side compare. It reports
// the mean time of a pull off and on and the ratio of pull rates on/off;
// bench/access.sh takes medians over rounds. The serial-control cases pair two
// mirrors without an index: their ratio shows the noise floor. The upstream
// must see no request during a run: every pull is warm.
func BenchmarkPull(b *testing.B) {
	reg := testregistry.Start(b)
	img := reg.PushRandom(b, "bench/app:v1", layerSize, layers)
	reqs := pullPaths(b, img, "bench/app", "v1")
	off, on, off2 := mirror(b, reg.URL, false, reqs), mirror(b, reg.URL, true, reqs), mirror(b, reg.URL, false, reqs)
	upstream := func() int64 {
		return reg.Count(http.MethodGet, "blobs") + reg.Count(http.MethodGet, "manifests") + reg.Count(http.MethodHead, "manifests")
	}
	for _, transport := range []string{"handler", "loopback"} {
		for _, sc := range []struct {
			name     string
			parallel bool
			other    http.Handler // "on": the indexed mirror; for a control, another unindexed one
		}{{"serial", false, on}, {"parallel", true, on}, {"serial-control", false, off2}} {
			b.Run(transport+"/"+sc.name, func(b *testing.B) {
				before := upstream()
				inProcess := transport == "handler" && !sc.parallel
				paired(b, sc.parallel, inProcess, puller(b, off, transport, reqs), puller(b, sc.other, transport, reqs))
				if n := upstream() - before; n != 0 {
					b.Fatalf("%d upstream requests during a warm run", n)
				}
			})
		}
	}
}

// puller returns a func doing one pull from h: in process, or over a loopback
// server started for the benchmark.
func puller(b *testing.B, h http.Handler, transport string, reqs []request) func() {
	if transport == "handler" {
		return func() { pull(b, h, reqs) }
	}
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	return func() { pullHTTP(b, client, srv.URL, reqs) }
}

// paired runs b.N rounds of one pull off and one on, alternating which goes
// first, and reports µs/pull of each and the pull rate ratio on/off. With
// threadTime (serial pulls in process, whose work all runs on the calling
// goroutine) the rounds run on one locked OS thread and also report its CPU
// time per pull, which other processes taking the CPU do not inflate as they
// do wall time.
func paired(b *testing.B, parallel, threadTime bool, off, on func()) {
	var wall, cpu [2]atomic.Int64 // [0] off, [1] on
	pulls := [2]func(){off, on}
	round := func(i int) {
		order := [2]int{0, 1}
		if i%2 == 1 {
			order = [2]int{1, 0}
		}
		for _, k := range order {
			t, c := time.Now(), threadCPU()
			pulls[k]()
			cpu[k].Add(threadCPU() - c)
			wall[k].Add(int64(time.Since(t)))
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				round(i)
			}
		})
	} else {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for i := range b.N {
			round(i)
		}
	}
	if threadTime {
		b.ReportMetric(float64(cpu[0].Load())/float64(b.N)/1e3, "cpu-µs/pull-off")
		b.ReportMetric(float64(cpu[1].Load())/float64(b.N)/1e3, "cpu-µs/pull-on")
		b.ReportMetric(float64(cpu[0].Load())/float64(cpu[1].Load()), "cpu-on/off")
	}
	b.ReportMetric(float64(wall[0].Load())/float64(b.N)/1e3, "µs/pull-off")
	b.ReportMetric(float64(wall[1].Load())/float64(b.N)/1e3, "µs/pull-on")
	b.ReportMetric(float64(wall[0].Load())/float64(wall[1].Load()), "on/off")
}
