package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ocimirror/proxy/internal/redistest"
)

// TestDo: an answer, redis.Nil included, keeps the coordinator up; with
// Redis stopped Do fails fast with ErrUnavailable and marks it degraded; it
// recovers when Redis is back.
func TestDo(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	c := newCoord(t, s)
	get := func(ctx context.Context, rc redis.UniversalClient) error { return rc.Get(ctx, "missing").Err() }
	if err := c.Do(ctx, get); !errors.Is(err, redis.Nil) || c.Degraded() {
		t.Fatalf("get of a missing key: %v, degraded %v; want redis.Nil, not degraded", err, c.Degraded())
	}
	s.Stop()
	for range 3 {
		start := time.Now()
		if err := c.Do(ctx, get); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("with redis stopped: %v, want ErrUnavailable", err)
		}
		if took := time.Since(start); took > time.Second {
			t.Fatalf("with redis stopped Do took %v; must fail fast", took)
		}
	}
	if !c.Degraded() {
		t.Fatal("not degraded with redis stopped")
	}
	s.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for !errors.Is(c.Do(ctx, get), redis.Nil) {
		if time.Now().After(deadline) {
			t.Fatal("Do did not recover 5s after redis restarted")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
