package auth

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"time"
)

// The failed-login throttle. Failures are counted per client address; from the
// threshold'th failure on, each failure locks the address out for base, then
// twice as long each time, up to maxLockout; credentialed requests during a
// lockout are refused without being checked (so a guess, right or wrong, tells
// nothing, and costs no bcrypt). An address that has been quiet for window
// after its last failure and lockout is forgotten; a successful login forgets
// it at once. Only requests that carry credentials are throttled: anonymous
// pulls from a shared address (a NAT, a CI fleet) go on.
const (
	throttleThreshold = 5
	throttleWindow    = time.Minute
	throttleBase      = time.Second
	throttleMax       = time.Minute
	throttleLimit     = 10000 // addresses remembered; the least recently failing is dropped first
)

type throttle struct {
	threshold int
	window    time.Duration
	base, max time.Duration
	limit     int

	mu    sync.Mutex
	byKey map[string]*list.Element // of *strike
	order *list.List               // front: most recent failure
}

// strike is the failure record of one address.
type strike struct {
	key      string
	failures int
	last     time.Time // of the last failure
	until    time.Time // end of the lockout; zero: none
}

func newThrottle() *throttle {
	return &throttle{
		threshold: throttleThreshold, window: throttleWindow,
		base: throttleBase, max: throttleMax, limit: throttleLimit,
		byKey: map[string]*list.Element{}, order: list.New(),
	}
}

// stale reports whether s is to be forgotten at now.
func (t *throttle) stale(s *strike, now time.Time) bool {
	end := s.last
	if s.until.After(end) {
		end = s.until
	}
	return now.Sub(end) > t.window
}

// wait returns how long key is still locked out at now; 0: not at all.
func (t *throttle) wait(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byKey[key]
	if !ok {
		return 0
	}
	s := e.Value.(*strike)
	if t.stale(s, now) {
		t.remove(e)
		return 0
	}
	if now.Before(s.until) {
		return s.until.Sub(now)
	}
	return 0
}

// fail records a failed login from key at now and returns the lockout it
// starts (0: none yet).
func (t *throttle) fail(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var s *strike
	if e, ok := t.byKey[key]; ok {
		s = e.Value.(*strike)
		if t.stale(s, now) {
			s.failures, s.until = 0, time.Time{}
		}
		t.order.MoveToFront(e)
	} else {
		// Drop forgotten addresses from the cold end, then the coldest if
		// the table is still full.
		for b := t.order.Back(); b != nil && t.stale(b.Value.(*strike), now); b = t.order.Back() {
			t.remove(b)
		}
		if t.order.Len() >= t.limit {
			t.remove(t.order.Back())
		}
		s = &strike{key: key}
		t.byKey[key] = t.order.PushFront(s)
	}
	s.failures++
	s.last = now
	if s.failures < t.threshold {
		return 0
	}
	d := t.max
	if n := s.failures - t.threshold; n < 30 && t.base<<n < t.max {
		d = t.base << n
	}
	s.until = now.Add(d)
	return d
}

// reset forgets key after a successful login.
func (t *throttle) reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.byKey[key]; ok {
		t.remove(e)
	}
}

func (t *throttle) remove(e *list.Element) {
	delete(t.byKey, e.Value.(*strike).key)
	t.order.Remove(e)
}

// throttleKey is the address failures are counted by: the client IP of
// RemoteAddr, an IPv6 client by its /64 (one host usually holds a whole /64).
// X-Forwarded-For is not trusted; behind a reverse proxy the caller sets
// RemoteAddr from it.
func throttleKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is6() {
		p, err := ip.Prefix(64)
		if err == nil {
			return p.String()
		}
	}
	return ip.String()
}
