//go:build e2e

package e2e

// The upstream as the replicas of the cluster test see it: a reverse proxy in
// front of a distribution registry, with one listener per replica, so that a
// blob GET names the replica that sent it (the one whose upstream connection
// is open is the one filling). It counts blob GETs and body bytes per replica
// and can hold each blob body to a rate, so that a fill lasts long enough to
// kill its replica in the middle of it.

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// transfer is one blob GET the front passed on, recorded when its body closed.
type transfer struct {
	replica int
	path    string
	bytes   int64
	start   time.Time     // when the front had the registry's answer
	took    time.Duration // from start to the body's close
	whole   bool          // the body reached its end (EOF)
}

// front is the counting, throttled upstream of a cluster.
type front struct {
	URLs []string // one per replica: http://127.0.0.1:port

	rate atomic.Int64   // bytes per second for each blob body; 0: unthrottled
	gets []atomic.Int64 // blob GETs by replica

	mu   sync.Mutex
	live map[*pacedBody]bool // blob bodies being passed on
	done []transfer
}

// startFront puts a front with n listeners before the registry at upstreamURL;
// the listeners close when the test ends.
func startFront(t *testing.T, upstreamURL string, n int) *front {
	t.Helper()
	u, err := url.Parse(upstreamURL)
	if err != nil {
		t.Fatalf("upstream URL %q: %v", upstreamURL, err)
	}
	f := &front{gets: make([]atomic.Int64, n), live: map[*pacedBody]bool{}}
	for i := range n {
		rp := httputil.NewSingleHostReverseProxy(u)
		rp.FlushInterval = -1 // pass bytes on as they come: the fill sees the pace
		rp.ModifyResponse = func(r *http.Response) error { f.watch(i, r); return nil }
		s := httptest.NewServer(rp)
		t.Cleanup(s.Close)
		f.URLs = append(f.URLs, s.URL)
	}
	return f
}

// setRate holds every blob body to bytesPerSec from now on (0: unthrottled).
func (f *front) setRate(bytesPerSec int64) { f.rate.Store(bytesPerSec) }

// blobGETs is the number of blob GETs all replicas sent.
func (f *front) blobGETs() int64 {
	var n int64
	for i := range f.gets {
		n += f.gets[i].Load()
	}
	return n
}

// filling returns the replica with a blob GET open that has passed on at
// least min bytes of its body and how many it has, or -1.
func (f *front) filling(min int64) (int, int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for b := range f.live {
		if n := b.n.Load(); n >= min {
			return b.i, n
		}
	}
	return -1, 0
}

// transfers returns the finished blob GETs of path (a substring, e.g. a digest).
func (f *front) transfers(path string) []transfer {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []transfer
	for _, tr := range f.done {
		if strings.Contains(tr.path, path) {
			out = append(out, tr)
		}
	}
	return out
}

// watch counts a blob GET of replica i and wraps its body to pace and count it.
func (f *front) watch(i int, r *http.Response) {
	if r.Request.Method != http.MethodGet || !strings.Contains(r.Request.URL.Path, "/blobs/") {
		return
	}
	f.gets[i].Add(1)
	b := &pacedBody{f: f, i: i, rc: r.Body, ctx: r.Request.Context(), path: r.Request.URL.Path, start: time.Now()}
	f.mu.Lock()
	f.live[b] = true
	f.mu.Unlock()
	r.Body = b
}

// pacedBody passes a blob body on at the front's rate, counting what it passed.
type pacedBody struct {
	f     *front
	i     int
	rc    io.ReadCloser
	ctx   context.Context
	path  string
	start time.Time
	n     atomic.Int64 // bytes passed on
	eof   bool
	once  sync.Once
}

// pacedChunk is the most a paced Read returns at once.
const pacedChunk = 64 << 10

// paceDue is when a transfer that started at start and holds to rate bytes
// per second may pass on the bytes after its first n.
func paceDue(start time.Time, n, rate int64) time.Time {
	return start.Add(time.Duration(float64(n) / float64(rate) * float64(time.Second)))
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if rate := b.f.rate.Load(); rate > 0 {
		p = p[:min(len(p), pacedChunk)]
		if d := time.Until(paceDue(b.start, b.n.Load(), rate)); d > 0 {
			select {
			case <-time.After(d):
			case <-b.ctx.Done(): // the replica hung up (or was killed)
				return 0, b.ctx.Err()
			}
		}
	}
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// Close records the transfer once.
func (b *pacedBody) Close() error {
	b.once.Do(func() {
		b.f.mu.Lock()
		delete(b.f.live, b)
		b.f.done = append(b.f.done, transfer{replica: b.i, path: b.path, bytes: b.n.Load(),
			start: b.start, took: time.Since(b.start), whole: b.eof})
		b.f.mu.Unlock()
	})
	return b.rc.Close()
}
