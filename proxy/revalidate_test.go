package proxy

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// tagUpstream serves one manifest as app:v1 until told to fail in a given way.
type tagUpstream struct {
	body    []byte
	status  atomic.Int32 // 0: serve; otherwise answer HEAD and GET with this status
	heads   atomic.Int64
	holdMu  sync.Mutex
	hold    chan struct{} // when set, HEADs wait for it
	arrived chan struct{} // signalled when a HEAD arrives while held
}

func (u *tagUpstream) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		u.heads.Add(1)
		u.holdMu.Lock()
		hold := u.hold
		u.holdMu.Unlock()
		if hold != nil {
			select {
			case u.arrived <- struct{}{}:
			default:
			}
			<-hold
		}
	}
	if s := u.status.Load(); s != 0 {
		if s == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "3600")
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(s))
		_, _ = w.Write([]byte(`{"errors":[{"code":"UNKNOWN","message":"failing on purpose"}]}`))
		return
	}
	w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	w.Header().Set("Docker-Content-Digest", digest.FromBytes(u.body).String())
	w.Header().Set("Content-Length", strconv.Itoa(len(u.body)))
	if r.Method == http.MethodGet {
		_, _ = w.Write(u.body)
	}
}

// TestStaleIfError: a cached tag is served when the upstream fails with 5xx or
// 429, and not when it says 404.
func TestStaleIfError(t *testing.T) {
	cases := []struct {
		status int
		want   int
	}{
		{http.StatusInternalServerError, http.StatusOK},
		{http.StatusBadGateway, http.StatusOK},
		{http.StatusServiceUnavailable, http.StatusOK},
		{http.StatusTooManyRequests, http.StatusOK},
		{http.StatusNotFound, http.StatusNotFound},
	}
	for _, tc := range cases {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			u := &tagUpstream{body: []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}`)}
			m := startMirror(t, liar(t, u.serve).URL)
			if code, _, body := get(t, "GET", m.URL+"/v2/app/manifests/v1", nil); code != 200 {
				t.Fatalf("first pull: %d %s", code, body)
			}
			u.status.Store(int32(tc.status))
			code, hdr, body := get(t, "GET", m.URL+"/v2/app/manifests/v1", nil)
			if code != tc.want {
				t.Fatalf("upstream %d: got %d %s, want %d", tc.status, code, body, tc.want)
			}
			if code == 200 && (string(body) != string(u.body) || hdr.Get("Docker-Content-Digest") != digest.FromBytes(u.body).String()) {
				t.Fatalf("stale copy differs: %s", body)
			}
		})
	}
}

// TestConcurrentTagRequestsShareOneHead: clients asking for a cached tag at
// once share one upstream HEAD.
func TestConcurrentTagRequestsShareOneHead(t *testing.T) {
	u := &tagUpstream{body: []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}`)}
	m := startMirror(t, liar(t, u.serve).URL)
	if code, _, _ := get(t, "GET", m.URL+"/v2/app/manifests/v1", nil); code != 200 {
		t.Fatal("first pull failed")
	}
	before := u.heads.Load()
	hold := make(chan struct{})
	u.holdMu.Lock()
	u.hold, u.arrived = hold, make(chan struct{}, 1)
	u.holdMu.Unlock()

	const clients = 20
	var wg sync.WaitGroup
	codes := make(chan int, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(m.URL + "/v2/app/manifests/v1")
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	select {
	case <-u.arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("no HEAD reached the upstream")
	}
	time.Sleep(200 * time.Millisecond) // let every client queue behind the HEAD
	close(hold)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("a client got %d", c)
		}
	}
	if n := u.heads.Load() - before; n != 1 {
		t.Fatalf("%d concurrent requests made %d upstream HEADs, want 1", clients, n)
	}
}
