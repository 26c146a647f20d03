package auth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocimirror/proxy/config"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestLoginThrottle(t *testing.T) {
	path := writeHtpasswd(t, map[string]string{"alice": "alice-pw"})
	clock := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	log, logs := testLogger()
	a, err := New(config.Auth{Htpasswd: &config.Htpasswd{Realm: "r", Path: path}}, WithClock(clock.Now), WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	srv := guard(a, func(*http.Request) []Access { return pull("dev/app") }, echoUser)
	// attempt answers a pull from remote with the password ("": none) with
	// its status and Retry-After.
	attempt := func(remote, pass string) (int, string) {
		req := httptest.NewRequest(http.MethodGet, "/v2/dev/app/manifests/latest", nil)
		req.RemoteAddr = remote
		if pass != "" {
			req.SetBasicAuth("alice", pass)
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code == http.StatusTooManyRequests {
			if code, _ := errBody(t, rec.Body); code != "TOOMANYREQUESTS" {
				t.Errorf("429 with errcode %s", code)
			}
		}
		return rec.Code, rec.Header().Get("Retry-After")
	}
	const ip = "203.0.113.9"
	mustBe := func(what string, gotStatus int, gotRetry string, status int, retry string) {
		t.Helper()
		if gotStatus != status || gotRetry != retry {
			t.Fatalf("%s: %d Retry-After %q, want %d %q", what, gotStatus, gotRetry, status, retry)
		}
	}
	// failTo locks ip out: threshold failures, the last one starts a 1 s lockout.
	failTo := func() {
		t.Helper()
		for i := 1; i <= throttleThreshold; i++ {
			s, r := attempt(ip+":1000", "wrong")
			mustBe("failure", s, r, 401, "")
		}
	}

	failTo()
	s, r := attempt(ip+":1001", "alice-pw") // another port, the same address
	mustBe("right password during the lockout", s, r, 429, "1")
	s, r = attempt("203.0.113.10:1000", "alice-pw")
	mustBe("another address", s, r, 200, "")
	s, r = attempt(ip+":1000", "")
	mustBe("anonymous pull from the locked address", s, r, 200, "")
	if !strings.Contains(logs.String(), "login refused: too many failed logins") {
		t.Errorf("no log of the refusal:\n%s", logs)
	}

	clock.Advance(time.Second)
	s, r = attempt(ip+":1000", "alice-pw")
	mustBe("after the lockout", s, r, 200, "")
	// The success forgot the failures: threshold-1 more do not lock.
	for i := 1; i < throttleThreshold; i++ {
		s, r = attempt(ip+":1000", "wrong")
		mustBe("failure after a success", s, r, 401, "")
	}
	s, r = attempt(ip+":1000", "alice-pw")
	mustBe("below the threshold again", s, r, 200, "")

	// Each failure after the lockout doubles it, up to the bound.
	failTo()
	for _, want := range []string{"1", "2", "4", "8", "16", "32", "60", "60"} {
		s, r = attempt(ip+":1000", "alice-pw")
		mustBe("locked out", s, r, 429, want)
		d, _ := time.ParseDuration(want + "s")
		clock.Advance(d - time.Millisecond)
		s, r = attempt(ip+":1000", "alice-pw")
		mustBe("just before the end", s, r, 429, "1")
		clock.Advance(time.Millisecond)
		s, r = attempt(ip+":1000", "wrong")
		mustBe("failure after the lockout", s, r, 401, "")
	}

	// A quiet window after the lockout forgets the address.
	clock.Advance(throttleMax + throttleWindow + time.Second)
	for i := 1; i < throttleThreshold; i++ {
		s, r = attempt(ip+":1000", "wrong")
		mustBe("failure after a quiet minute", s, r, 401, "")
	}
	s, r = attempt(ip+":1000", "alice-pw")
	mustBe("after a quiet minute", s, r, 200, "")
}

// The table is bounded: forgotten addresses are dropped, and when it is full
// the address that failed least recently goes.
func TestThrottleBounded(t *testing.T) {
	th := newThrottle()
	th.limit = 3
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, key := range []string{"a", "b", "c", "a", "d"} {
		th.fail(key, now.Add(time.Duration(i)*time.Second))
	}
	if len(th.byKey) != 3 || th.order.Len() != 3 {
		t.Fatalf("%d addresses remembered, limit 3", len(th.byKey))
	}
	if _, ok := th.byKey["b"]; ok {
		t.Errorf("b, the least recent failure, was kept: %v", th.byKey)
	}
	later := now.Add(time.Hour)
	th.fail("e", later)
	if len(th.byKey) != 1 || th.order.Len() != 1 {
		t.Errorf("stale addresses kept: %v", th.byKey)
	}
	if th.wait("e", later.Add(throttleWindow+time.Second)) != 0 || len(th.byKey) != 0 {
		t.Errorf("a stale address is still remembered: %v", th.byKey)
	}
}

func TestThrottleKey(t *testing.T) {
	for remote, want := range map[string]string{
		"192.0.2.1:1234":             "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:80":  "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:80":       "2001:db8:1:3::/64",
		"[::ffff:192.0.2.1]:80":      "192.0.2.1",
		"[fe80::1%eth0]:80":          "fe80::/64",
		"not an address":             "not an address",
		"192.0.2.1":                  "192.0.2.1",
	} {
		if got := throttleKey(remote); got != want {
			t.Errorf("throttleKey(%q) = %q, want %q", remote, got, want)
		}
	}
}
