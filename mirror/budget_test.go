package mirror

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ocimirror/proxy/internal/testregistry"
)

// failFirst answers the first n requests that match with status (and
// Retry-After when retryAfter is not ""), and records when it did.
type failFirst struct {
	n          int64
	status     int
	retryAfter string
	match      func(*http.Request) bool

	seen atomic.Int64
	mu   sync.Mutex
	at   []time.Time
}

func (f *failFirst) handle(w http.ResponseWriter, r *http.Request) bool {
	if !f.match(r) || f.seen.Add(1) > f.n {
		return false
	}
	if f.retryAfter != "" {
		w.Header().Set("Retry-After", f.retryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.status)
	code := "UNKNOWN"
	if f.status == http.StatusTooManyRequests {
		code = "TOOMANYREQUESTS"
	}
	_, _ = w.Write([]byte(`{"errors":[{"code":"` + code + `","message":"try later"}]}`))
	f.mu.Lock()
	f.at = append(f.at, time.Now())
	f.mu.Unlock()
	return true
}

func (f *failFirst) times() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.at...)
}

func blobGet(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:")
}

func manifestGet(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/")
}

// TestCopyRetries5xx: the source answers 500 to the first two blob GETs; the
// copy retries and succeeds. Without retries it fails with the registry's error.
func TestCopyRetries5xx(t *testing.T) {
	src, dst := testregistry.Start(t), testregistry.Start(t)
	img := src.PushRandom(t, "team/app:v1", 4096, 2)
	for _, tc := range []struct {
		name     string
		attempts int
		ok       bool
	}{{"retried", 3, true}, {"not retried", 1, false}} {
		t.Run(tc.name, func(t *testing.T) {
			ff := &failFirst{n: 2, status: http.StatusInternalServerError, match: blobGet}
			f := newFront(t, src, ff.handle)
			c := NewCopier(WithRetries(tc.attempts, 10*time.Millisecond))
			repo := "retry/" + strings.ReplaceAll(tc.name, " ", "")
			res, err := c.Copy(context.Background(), endpoint(t, f.Host, "team/app"), "v1", endpoint(t, dst.Host, repo), "", nil)
			if tc.ok {
				if err != nil {
					t.Fatalf("copy with retries: %v", err)
				}
				if res.Digest != digestOf(t, img) || len(ff.times()) != 2 {
					t.Errorf("result %+v after %d failures", res, len(ff.times()))
				}
				return
			}
			var te *transport.Error
			if !errors.As(err, &te) || te.StatusCode != http.StatusInternalServerError || headDigest(t, dst.Host, repo+":v1") != "" {
				t.Errorf("copy without retries: %v, want the registry's 500 and no tag", err)
			}
		})
	}
}

// TestCopyWaitsRetryAfter: the source answers 429 Retry-After: 1 to the first
// two manifest GETs; the copy waits each time, then succeeds.
func TestCopyWaitsRetryAfter(t *testing.T) {
	src, dst := testregistry.Start(t), testregistry.Start(t)
	src.PushRandom(t, "team/app:v1", 1024, 1)
	ff := &failFirst{n: 2, status: http.StatusTooManyRequests, retryAfter: "1", match: manifestGet}
	f := newFront(t, src, ff.handle)
	c := NewCopier(WithRetries(3, 10*time.Millisecond))
	if _, err := c.Copy(context.Background(), endpoint(t, f.Host, "team/app"), "v1", endpoint(t, dst.Host, "team/app"), "", nil); err != nil {
		t.Fatal(err)
	}
	at := ff.times()
	if len(at) != 2 {
		t.Fatalf("%d 429s sent, want 2", len(at))
	}
	var gets []time.Time
	for _, h := range f.hitsSince(time.Time{}) {
		if h.method == http.MethodGet && strings.HasSuffix(h.path, "/manifests/v1") {
			gets = append(gets, h.at)
		}
	}
	if len(gets) < 3 {
		t.Fatalf("%d GETs of the tag, want 3", len(gets))
	}
	for i := 1; i < 3; i++ {
		if gap := gets[i].Sub(gets[i-1]); gap < time.Second {
			t.Errorf("manifest GET %d came %v after a 429 with Retry-After: 1", i+1, gap)
		}
	}
}

// TestBudgetSharedByCopies: after one copy got a 429 with Retry-After: 2, a
// second copy from the same host (another repository) waits too: no request
// reaches the host before the two seconds are up.
func TestBudgetSharedByCopies(t *testing.T) {
	src, dst := testregistry.Start(t), testregistry.Start(t)
	src.PushRandom(t, "team/one:v1", 1024, 1)
	src.PushRandom(t, "team/two:v1", 1024, 1)
	ff := &failFirst{n: 1, status: http.StatusTooManyRequests, retryAfter: "2", match: manifestGet}
	f := newFront(t, src, ff.handle)
	c := NewCopier(WithRetries(3, 10*time.Millisecond))
	errs := make(chan error, 2)
	go func() {
		_, err := c.Copy(context.Background(), endpoint(t, f.Host, "team/one"), "v1", endpoint(t, dst.Host, "team/one"), "", nil)
		errs <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for until, _ := c.budget.until(f.Host, false); until.IsZero(); until, _ = c.budget.until(f.Host, false) {
		if time.Now().After(deadline) {
			t.Fatal("the 429 never reached the budget")
		}
		time.Sleep(5 * time.Millisecond)
	}
	go func() {
		_, err := c.Copy(context.Background(), endpoint(t, f.Host, "team/two"), "v1", endpoint(t, dst.Host, "team/two"), "", nil)
		errs <- err
	}()
	for range 2 {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("copies still running after 30s")
		}
	}
	t429 := ff.times()[0]
	after := f.hitsSince(t429)
	if len(after) < 2 {
		t.Fatalf("%d requests after the 429", len(after))
	}
	var two int
	for _, h := range after[1:] { // after[0] is the 429 itself
		if gap := h.at.Sub(t429); gap < 2*time.Second {
			t.Errorf("%s %s reached the host %v after a 429 with Retry-After: 2", h.method, h.path, gap)
		}
		if strings.Contains(h.path, "team/two") {
			two++
		}
	}
	if two == 0 {
		t.Error("the second copy sent nothing")
	}
	if headDigest(t, dst.Host, "team/two:v1") == "" || headDigest(t, dst.Host, "team/one:v1") == "" {
		t.Error("a copy did not arrive")
	}
}

// TestRateLimitFailsFast: a Retry-After longer than the Copier's maximum wait
// fails the copy at once with a *RateLimitError saying until when.
func TestRateLimitFailsFast(t *testing.T) {
	src, dst := testregistry.Start(t), testregistry.Start(t)
	src.PushRandom(t, "team/app:v1", 1024, 1)
	ff := &failFirst{n: 100, status: http.StatusTooManyRequests, retryAfter: "3600", match: manifestGet}
	f := newFront(t, src, ff.handle)
	c := NewCopier(WithRetries(3, 10*time.Millisecond), WithMaxWait(200*time.Millisecond))
	start := time.Now()
	_, err := c.Copy(context.Background(), endpoint(t, f.Host, "team/app"), "v1", endpoint(t, dst.Host, "team/app"), "", nil)
	var rl *RateLimitError
	if !errors.As(err, &rl) || rl.Until.Before(start.Add(59*time.Minute)) || rl.Host != f.Host {
		t.Fatalf("error %v, want a *RateLimitError for %s until an hour from now", err, f.Host)
	}
	if len(ff.times()) != 1 {
		t.Errorf("%d requests got the 429: the budget should have stopped the retries", len(ff.times()))
	}
	t.Logf("failed after %v: %v", time.Since(start), err)
}

// TestHubQuota: Docker Hub's "ratelimit-remaining: 0;w=1" holds the next
// manifest GET for the window, not HEADs or blob transfers.
func TestHubQuota(t *testing.T) {
	b := newBudget(time.Minute, nil)
	resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Ratelimit-Remaining": {"0;w=1"}, "Ratelimit-Limit": {"100;w=21600"}}}
	b.observe("hub.example", resp)
	if until, _ := b.until("hub.example", false); !until.IsZero() {
		t.Errorf("non-pull requests held until %v", until)
	}
	if until, _ := b.until("hub.example", true); time.Until(until) < 900*time.Millisecond {
		t.Errorf("pulls held until %v, want about a second from now", until)
	}
	b.observe("hub.example", &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Ratelimit-Remaining": {"12;w=21600"}}})
	if until, _ := b.until("hub.example", true); time.Until(until) < 900*time.Millisecond {
		t.Error("a later response with quota left cut the wait short")
	}

	// End to end: the index's GET says the quota is spent; the GETs of its
	// children wait the window out.
	src, dst := testregistry.Start(t), testregistry.Start(t)
	idx, _ := platformIndex(t, 1024, 1)
	src.PushIndex(t, "team/app:v1", idx)
	var first atomic.Bool
	var spentAt atomic.Int64 // unix nanoseconds
	f := newFront(t, src, func(w http.ResponseWriter, r *http.Request) bool {
		if manifestGet(r) && !first.Swap(true) {
			spentAt.Store(time.Now().UnixNano())
			w.Header().Set("RateLimit-Remaining", "0;w=1")
		}
		return false
	})
	c := NewCopier(WithRetries(3, 10*time.Millisecond))
	if _, err := c.Copy(context.Background(), endpoint(t, f.Host, "team/app"), "v1", endpoint(t, dst.Host, "team/app"), "", nil); err != nil {
		t.Fatal(err)
	}
	spent := time.Unix(0, spentAt.Load())
	var gets int
	for _, h := range f.hitsSince(spent.Add(time.Nanosecond)) {
		if h.method == http.MethodGet && strings.Contains(h.path, "/manifests/sha256:") {
			gets++
			if gap := h.at.Sub(spent); gap < time.Second {
				t.Errorf("manifest GET %s %v after the quota was spent", h.path, gap)
			}
		}
	}
	if gets < 3 {
		t.Errorf("%d child manifest GETs, want 3", gets)
	}
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"-5":                            0,
		"abc":                           0,
		"7":                             7 * time.Second,
		"999999999":                     maxPause,
		"Fri, 02 Jan 2026 03:04:15 GMT": 10 * time.Second,
		"Fri, 02 Jan 2026 03:04:00 GMT": 0,
	} {
		if got := retryAfter(in, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", in, got, want)
		}
	}
	for in, want := range map[string]struct {
		n  int64
		w  time.Duration
		ok bool
	}{
		"76;w=21600": {76, 6 * time.Hour, true},
		"0":          {0, time.Minute, true},
		" 3 ; w=60":  {3, time.Minute, true},
		"x;w=60":     {0, 0, false},
		"-1;w=60":    {0, 0, false},
	} {
		n, w, ok := parseQuota(in)
		if n != want.n || w != want.w || ok != want.ok {
			t.Errorf("parseQuota(%q) = %d, %v, %t; want %+v", in, n, w, ok, want)
		}
	}
}
