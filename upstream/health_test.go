package upstream

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// TestHealth sends requests to httptest upstreams that answer, announce a
// quota, fail and refuse, and checks what the client's Health says after
// each.
func TestHealth(t *testing.T) {
	var status atomic.Int64
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := int(status.Load())
		if s == http.StatusOK || s == http.StatusTooManyRequests {
			w.Header().Set("RateLimit-Limit", "100;w=21600")
			w.Header().Set("RateLimit-Remaining", map[bool]string{true: "76;w=21600", false: "0;w=21600"}[s == http.StatusOK])
		}
		w.Header().Set("Docker-Content-Digest", digest.FromString("m").String())
		w.WriteHeader(s)
	}))
	t.Cleanup(srv.Close)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := newTestClient(t, srv.URL, WithRetries(1, time.Millisecond), withClock(func() time.Time { return now }))
	if h := c.Health(); !h.LastSuccess.IsZero() || h.LastError != "" || h.Quota.Known() || h.Quota.Limit != -1 {
		t.Fatalf("before any request: %+v", h)
	}
	steps := []struct {
		name         string
		status       int
		wantFailures int64
		wantSuccess  bool   // LastSuccess is this step's time
		wantError    string // in LastError, "" for unchanged
		wantRemain   int64
	}{
		{"answer with a quota", http.StatusOK, 0, true, "", 76},
		{"404 is an answer", http.StatusNotFound, 0, true, "", 76},
		{"5xx after the retries", http.StatusBadGateway, 1, false, "502 Bad Gateway", 76},
		{"again", http.StatusServiceUnavailable, 2, false, "503 Service Unavailable", 76},
		{"rate limited", http.StatusTooManyRequests, 3, false, "429 Too Many Requests", 0},
		{"recovered", http.StatusOK, 0, true, "429 Too Many Requests", 76},
	}
	for i, s := range steps {
		now = now.Add(time.Minute)
		status.Store(int64(s.status))
		_, _ = c.HeadManifest(context.Background(), "lib/app", "v1", nil)
		h := c.Health()
		if h.ConsecutiveFailures != s.wantFailures {
			t.Errorf("%s: %d failures in a row, want %d", s.name, h.ConsecutiveFailures, s.wantFailures)
		}
		if got := h.LastSuccess.Equal(now); got != s.wantSuccess {
			t.Errorf("%s: last success %v (now %v)", s.name, h.LastSuccess, now)
		}
		if s.wantError != "" && (!strings.Contains(h.LastError, s.wantError) || (!s.wantSuccess && !h.LastErrorAt.Equal(now))) {
			t.Errorf("%s: last error %q at %v, want %q", s.name, h.LastError, h.LastErrorAt, s.wantError)
		}
		if i == 0 && h.LastError != "" {
			t.Errorf("%s: an error %q before any failure", s.name, h.LastError)
		}
		q := h.Quota
		if !q.Known() || q.Remaining != s.wantRemain || q.Limit != 100 || q.Window != 6*time.Hour {
			t.Errorf("%s: quota %+v, want %d of 100 per 6h", s.name, q, s.wantRemain)
		}
	}
}

// TestHealthUnreachable: an upstream nobody listens on fails every request;
// a cancelled request is not counted.
func TestHealthUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c := newTestClient(t, url, WithRetries(0, time.Millisecond))
	for range 2 {
		if err := c.Ping(context.Background()); err == nil {
			t.Fatal("ping of a closed port succeeded")
		}
	}
	h := c.Health()
	if h.ConsecutiveFailures != 2 || !strings.Contains(h.LastError, "connect") || h.LastErrorAt.IsZero() || !h.LastSuccess.IsZero() {
		t.Errorf("health %+v, want 2 connection failures", h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _ = c.HeadManifest(ctx, "lib/app", "v1", nil)
	if n := c.Health().ConsecutiveFailures; n != 2 {
		t.Errorf("a cancelled request counted: %d failures", n)
	}
}

// TestHealthStalledBody: a blob body that stops sending is a failure, though
// its headers were an answer.
func TestHealthStalledBody(t *testing.T) {
	data := []byte(strings.Repeat("x", 4096))
	srv := stallingServer(t, data)
	c := newTestClient(t, srv.URL, WithTimeouts(time.Second, time.Second, 200*time.Millisecond))
	body, _, err := c.GetBlob(context.Background(), "lib/app", digest.FromBytes(data))
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	if c.Health().ConsecutiveFailures != 0 {
		t.Fatal("the answer's headers counted as a failure")
	}
	if _, err := io.ReadAll(body); !errors.Is(err, ErrStalled) {
		t.Fatalf("read: %v, want a stall", err)
	}
	_, _ = body.Read(make([]byte, 1)) // a second read reports the same stall
	if h := c.Health(); h.ConsecutiveFailures != 1 || !strings.Contains(h.LastError, "stalled") {
		t.Errorf("health %+v, want one stall", h)
	}
}
