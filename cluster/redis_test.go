package cluster

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ocimirror/proxy/internal/redistest"
)

// newCoord returns a coordinator on s with the fail-fast timeouts serve uses.
func newCoord(t *testing.T, s *redistest.Server, opts ...RedisOption) *Redis {
	t.Helper()
	c := NewRedis(redis.NewClient(&redis.Options{
		Addr: s.Addr, DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond,
		WriteTimeout: 300 * time.Millisecond, MaxRetries: -1,
	}), opts...)
	c.Poll = 20 * time.Millisecond
	t.Cleanup(func() { c.Close() })
	return c
}

func TestLeaseExclusive(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	var holders atomic.Int32
	var wg sync.WaitGroup
	releases := make(chan func(), 16)
	for range 16 { // 16 replicas race for one key
		c := newCoord(t, s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			held, release, err := c.Lease(ctx, "fill:x", 5*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			if held {
				holders.Add(1)
				releases <- release
			}
		}()
	}
	wg.Wait()
	if n := holders.Load(); n != 1 {
		t.Fatalf("%d replicas hold the lease, want exactly 1", n)
	}
	(<-releases)()
	c := newCoord(t, s)
	held, release, err := c.Lease(ctx, "fill:x", 5*time.Second)
	if err != nil || !held {
		t.Fatalf("after release: held %v, err %v; want the lease", held, err)
	}
	release()
	release() // idempotent
}

// TestLeaseRenewed holds a lease for several TTLs: the renewal keeps others out.
func TestLeaseRenewed(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	a, b := newCoord(t, s), newCoord(t, s)
	held, release, err := a.Lease(ctx, "k", 300*time.Millisecond)
	if err != nil || !held {
		t.Fatalf("held %v, err %v", held, err)
	}
	defer release()
	deadline := time.Now().Add(1200 * time.Millisecond) // 4 TTLs
	for time.Now().Before(deadline) {
		if held, _, err := b.Lease(ctx, "k", time.Second); err != nil || held {
			t.Fatalf("another replica got a renewed lease: held %v, err %v", held, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLeaseExpiryTakeover: a holder that dies (its client gone, no release)
// loses the lease after the TTL; a waiter returns and takes it over.
func TestLeaseExpiryTakeover(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	a, b := newCoord(t, s), newCoord(t, s)
	ttl := 500 * time.Millisecond
	held, _, err := a.Lease(ctx, "k", ttl)
	if err != nil || !held {
		t.Fatalf("held %v, err %v", held, err)
	}
	a.Close() // the holder dies: no more renewals, no release
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := b.WaitReleased(wctx, "k"); err != nil {
		t.Fatalf("waiting for the dead holder's lease: %v", err)
	}
	took := time.Since(start)
	if took < ttl/2 {
		t.Fatalf("lease free after %v, before its TTL %v", took, ttl)
	}
	held, release, err := b.Lease(ctx, "k", ttl)
	if err != nil || !held {
		t.Fatalf("takeover: held %v, err %v", held, err)
	}
	release()
	t.Logf("takeover after %v (ttl %v)", took, ttl)
}

// TestWaitReleasedWakesOnRelease: a release wakes a waiter at once (pub/sub),
// and a waiter honours its context.
func TestWaitReleasedWakesOnRelease(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	a, b := newCoord(t, s), newCoord(t, s)
	b.Poll = time.Hour // only the notification can wake it
	_, release, err := a.Lease(ctx, "k", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := b.WaitReleased(short, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait on a held lease with a short ctx: %v, want deadline exceeded", err)
	}
	done := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		done <- b.WaitReleased(wctx, "k")
	}()
	time.Sleep(100 * time.Millisecond) // let it subscribe
	start := time.Now()
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("waiter woke %v after the release", took)
	}
}

func TestPutGet(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	a, b := newCoord(t, s), newCoord(t, s)
	if _, ok, err := b.Get(ctx, "tag"); ok || err != nil {
		t.Fatalf("get before put: ok %v err %v", ok, err)
	}
	if err := a.Put(ctx, "tag", "sha256:abc", 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := b.Get(ctx, "tag"); v != "sha256:abc" || !ok || err != nil {
		t.Fatalf("get: %q %v %v", v, ok, err)
	}
	time.Sleep(400 * time.Millisecond)
	if _, ok, _ := b.Get(ctx, "tag"); ok {
		t.Fatal("value outlived its TTL")
	}
}

// TestDegraded stops Redis: operations fail fast with ErrUnavailable, the state
// callback fires once per transition, and the coordinator recovers when Redis
// is back.
func TestDegraded(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	var mu sync.Mutex
	var states []bool
	c := newCoord(t, s, WithStateFunc(func(d bool) { mu.Lock(); states = append(states, d); mu.Unlock() }))
	if _, release, err := c.Lease(ctx, "k", time.Second); err != nil {
		t.Fatal(err)
	} else {
		release()
	}
	s.Stop()
	for range 5 {
		start := time.Now()
		_, _, err := c.Lease(ctx, "k", time.Second)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("lease with redis stopped: %v, want ErrUnavailable", err)
		}
		if took := time.Since(start); took > time.Second {
			t.Fatalf("lease with redis stopped took %v; must fail fast", took)
		}
		if err := c.WaitReleased(ctx, "k"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("wait with redis stopped: %v, want ErrUnavailable", err)
		}
	}
	if !c.Degraded() {
		t.Fatal("not degraded with redis stopped")
	}
	s.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for {
		held, release, err := c.Lease(ctx, "k2", time.Second)
		if err == nil && held {
			release()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery 5s after redis restarted: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []bool{false, true, false}
	if len(states) != len(want) || states[0] || !states[1] || states[2] {
		t.Fatalf("state transitions %v, want %v (one per transition)", states, want)
	}
}

// TestHoldLost: a held lease that expires and is taken by another replica
// (here: deleted behind the holder's back) is reported lost through the
// channel Hold returned; a lease still held is not.
func TestHoldLost(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	a, b := newCoord(t, s), newCoord(t, s)
	ttl := 300 * time.Millisecond
	held, lost, release, err := a.Hold(ctx, "k", ttl)
	if err != nil || !held {
		t.Fatalf("held %v, err %v", held, err)
	}
	defer release()
	select {
	case <-lost:
		t.Fatal("a renewed lease reported lost")
	case <-time.After(2 * ttl):
	}
	raw := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer raw.Close()
	if err := raw.Del(ctx, Prefix+"lease:k").Err(); err != nil {
		t.Fatal(err)
	}
	if held, rb, err := b.Lease(ctx, "k", 10*time.Second); err != nil || !held {
		t.Fatalf("b could not take the deleted lease: held %v, err %v", held, err)
	} else {
		defer rb()
	}
	select {
	case <-lost:
	case <-time.After(5 * ttl):
		t.Fatal("a lease taken over was not reported lost")
	}
}

// TestHeld: Held tells a held lease from a free one, and fails with
// ErrUnavailable when Redis is down.
func TestHeld(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	a, b := newCoord(t, s), newCoord(t, s)
	if held, err := b.Held(ctx, "fill:x"); held || err != nil {
		t.Fatalf("free lease: held %v, err %v", held, err)
	}
	_, release, err := a.Lease(ctx, "fill:x", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if held, err := b.Held(ctx, "fill:x"); !held || err != nil {
		t.Fatalf("lease held by another replica: held %v, err %v", held, err)
	}
	release()
	if held, err := b.Held(ctx, "fill:x"); held || err != nil {
		t.Fatalf("released lease: held %v, err %v", held, err)
	}
	s.Stop()
	if _, err := b.Held(ctx, "fill:x"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("with redis down: %v, want ErrUnavailable", err)
	}
}
