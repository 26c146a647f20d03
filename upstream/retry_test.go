package upstream

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// scripted answers the nth request with statuses[n] (the last one repeats);
// 200 answers carry a small manifest.
func scripted(t *testing.T, statuses []int, header http.Header) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		status := statuses[min(i, len(statuses)-1)]
		if status != http.StatusOK {
			for k, v := range header {
				w.Header()[k] = v
			}
			writeErrcode(w, status, "TOOMANYREQUESTS", "slow down")
			return
		}
		w.Header().Set("Content-Type", mtOCIManifest)
		_, _ = w.Write([]byte(`{"schemaVersion":2}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name         string
		statuses     []int
		header       http.Header
		retries      int
		wantAttempts int32
		wantStatus   int // 0: success
		minElapsed   time.Duration
		maxElapsed   time.Duration
	}{
		{"503 twice then 200", []int{503, 503, 200}, nil, 3, 3, 0, 0, 5 * time.Second},
		{"500 outlasts the retries", []int{500}, nil, 2, 3, 500, 0, 5 * time.Second},
		{"retries disabled", []int{502, 200}, nil, 0, 1, 502, 0, 5 * time.Second},
		{"404 is not retried", []int{404, 200}, nil, 3, 1, 404, 0, 5 * time.Second},
		{"429 Retry-After 1 then 200", []int{429, 200}, http.Header{"Retry-After": {"1"}}, 3, 2, 0, 900 * time.Millisecond, 5 * time.Second},
		{"429 without Retry-After fails at once", []int{429, 200}, nil, 3, 1, 429, 0, time.Second},
		{"429 Retry-After 3600 fails fast", []int{429, 200}, http.Header{"Retry-After": {"3600"}}, 3, 1, 429, 0, time.Second},
		{"503 Retry-After beyond cap fails fast", []int{503, 200}, http.Header{"Retry-After": {"60"}}, 3, 1, 503, 0, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, n := scripted(t, tt.statuses, tt.header)
			c := newTestClient(t, srv.URL, WithRetries(tt.retries, 5*time.Millisecond))
			start := time.Now()
			_, _, err := c.GetManifest(testContext(t), "team/app", "v1", nil)
			elapsed := time.Since(start)
			if got := n.Load(); got != tt.wantAttempts {
				t.Errorf("attempts = %d, want %d", got, tt.wantAttempts)
			}
			if elapsed < tt.minElapsed || elapsed > tt.maxElapsed {
				t.Errorf("took %v, want between %v and %v", elapsed, tt.minElapsed, tt.maxElapsed)
			}
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("err = %v, want success", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.StatusCode != tt.wantStatus {
				t.Fatalf("err = %v, want status %d", err, tt.wantStatus)
			}
			if want := tt.wantStatus >= 500 || tt.wantStatus == 429; IsUnavailable(err) != want {
				t.Errorf("IsUnavailable = %v, want %v", !want, want)
			}
		})
	}
}

func TestRetryAfterReported(t *testing.T) {
	srv, _ := scripted(t, []int{429}, http.Header{"Retry-After": {"3600"}})
	c := newTestClient(t, srv.URL)
	_, err := c.HeadManifest(testContext(t), "team/app", "v1", nil)
	var e *Error
	if !errors.As(err, &e) || e.RetryAfter != time.Hour {
		t.Fatalf("err = %#v, want an *Error with RetryAfter 1h", err)
	}
	if !strings.Contains(err.Error(), "retry after 1h0m0s") {
		t.Errorf("Error() = %q does not mention the wait", err)
	}
}

func TestConnectionRefusedIsBounded(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there any more
	c := newTestClient(t, "http://"+addr, WithRetries(2, 20*time.Millisecond))
	start := time.Now()
	_, err = c.HeadManifest(testContext(t), "team/app", "v1", nil)
	if err == nil || !IsUnavailable(err) {
		t.Fatalf("err = %v, want an unavailable error", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("connection refused took %v to fail", elapsed)
	}
}

// TestConnectionDropCountsAttempts uses a server that accepts and closes at
// once, to count that a connection error is tried 1+retries times.
func TestConnectionDropCountsAttempts(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var accepted atomic.Int32
	go func() {
		for range 100 { // bounded; ends when the listener closes
			conn, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conn.Close()
		}
	}()
	c := newTestClient(t, "http://"+l.Addr().String(), WithRetries(2, 5*time.Millisecond))
	_, _, err = c.GetManifest(testContext(t), "team/app", "v1", nil)
	if !IsUnavailable(err) {
		t.Fatalf("err = %v, want an unavailable error", err)
	}
	if got := accepted.Load(); got != 3 {
		t.Errorf("connections = %d, want 3 (1 + 2 retries)", got)
	}
}

func TestRetryHonoursContext(t *testing.T) {
	srv, n := scripted(t, []int{503}, nil)
	c := newTestClient(t, srv.URL, WithRetries(5, 2*time.Second))
	ctx, cancel := testContextWithTimeout(t, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.HeadManifest(ctx, "team/app", "v1", nil)
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("a 300ms deadline took %v to end the retries", elapsed)
	}
	if err == nil || n.Load() != 1 {
		t.Errorf("err = %v after %d attempts, want an error after 1", err, n.Load())
	}
}

// TestNoRetriesWhileDown: once a request failed after its retries, the next
// ones are tried once, until one gets an answer; then retries are back.
func TestNoRetriesWhileDown(t *testing.T) {
	srv, n := scripted(t, []int{503, 503, 503, 503, 200, 503}, nil)
	c := newTestClient(t, srv.URL, WithRetries(2, 5*time.Millisecond))
	for i, want := range []struct {
		attempts int32
		ok       bool
	}{
		{3, false}, // up as far as the client knows: 1 + 2 retries
		{1, false}, // down: once
		{1, true},  // down: once, and it answers
		{3, false}, // up again: retried
	} {
		before := n.Load()
		_, _, err := c.GetManifest(testContext(t), "team/app", "v1", nil)
		if got := n.Load() - before; got != want.attempts {
			t.Errorf("request %d: %d attempts, want %d", i, got, want.attempts)
		}
		if (err == nil) != want.ok {
			t.Errorf("request %d: err = %v, want success %v", i, err, want.ok)
		}
	}
}
