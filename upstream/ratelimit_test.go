package upstream

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
)

func TestRateLimitRemaining(t *testing.T) {
	var remaining atomic.Int64
	remaining.Store(76)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("RateLimit-Limit", "100;w=21600")
		w.Header().Set("RateLimit-Remaining", strconv.FormatInt(remaining.Load(), 10)+";w=21600")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv.URL)
	if _, ok := c.RateLimitRemaining(); ok {
		t.Fatal("a quota before any answer")
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, ok := c.RateLimitRemaining(); !ok || n != 76 {
		t.Fatalf("remaining %d %v, want 76", n, ok)
	}
	remaining.Store(3)
	_ = c.Ping(context.Background())
	if n, _ := c.RateLimitRemaining(); n != 3 || !c.rate.low.Load() {
		t.Fatalf("remaining %d low %v, want 3 and a warning", n, c.rate.low.Load())
	}
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{{"76;w=21600", 76, true}, {"5", 5, true}, {"", 0, false}, {"x;w=1", 0, false}, {"-1", 0, false}} {
		if got, ok := quota(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("quota(%q) = %d %v", tc.in, got, ok)
		}
	}
}
