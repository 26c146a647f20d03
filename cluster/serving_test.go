package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/internal/redistest"
)

func fillLease(d digest.Digest) string { return "fill:" + d.String() }

// TestServingSeenByOthers: what replica A publishes as served is in use to
// B's check, in one call with the fill leases; when A stops publishing its
// set expires (three intervals), and when A stops normally it goes at once.
func TestServingSeenByOthers(t *testing.T) {
	rs := redistest.Start(t)
	ctx := context.Background()
	every := 200 * time.Millisecond
	a := NewServing(newCoord(t, rs, WithLogger(quietLogger())), every)
	b := NewServing(newCoord(t, rs, WithLogger(quietLogger())), every)
	z, y, leased := dgst("z"), dgst("y"), dgst("leased")
	if err := a.Publish(ctx, []digest.Digest{z}); err != nil {
		t.Fatal(err)
	}
	held, release, err := newCoord(t, rs).Lease(ctx, fillLease(leased), 5*time.Second)
	if err != nil || !held {
		t.Fatalf("fill lease: %v %v", held, err)
	}
	defer release()
	used, err := b.Used(ctx, []digest.Digest{z, y, leased}, fillLease)
	if err != nil || !used[z] || used[y] || !used[leased] {
		t.Fatalf("B's Used = %v, %v; want z (served by A) and the leased one, not y", used, err)
	}
	published := time.Now()
	took := waitUntil(t, "A's set to expire", func() bool {
		used, err := b.Used(ctx, []digest.Digest{z}, fillLease)
		return err == nil && !used[z]
	})
	if gone := time.Since(published); gone < 2*every || took > 6*every {
		t.Errorf("A's set expired %v after its publication, want about %v", gone, 3*every)
	}

	// Run: published at once, withdrawn when it stops.
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); a.Run(runCtx, func() []digest.Digest { return []digest.Digest{y} }, nil) }()
	waitUntil(t, "A's running publication", func() bool {
		used, err := b.Used(ctx, []digest.Digest{y}, fillLease)
		return err == nil && used[y]
	})
	stop()
	<-done
	if used, err := b.Used(ctx, []digest.Digest{y}, fillLease); err != nil || used[y] {
		t.Fatalf("after A stopped: Used = %v, %v; want y free at once", used, err)
	}
}

// TestServingDegraded: with Redis down, publishing and asking fail fast with
// an error, so the evictor counts only its own replica's readers.
func TestServingDegraded(t *testing.T) {
	rs := redistest.Start(t)
	s := NewServing(newCoord(t, rs, WithLogger(quietLogger())), 0)
	rs.Stop()
	start := time.Now()
	if _, err := s.Used(context.Background(), []digest.Digest{dgst("z")}, fillLease); err == nil {
		t.Fatal("Used with Redis down: no error")
	}
	if err := s.Publish(context.Background(), []digest.Digest{dgst("z")}); err == nil {
		t.Fatal("Publish with Redis down: no error")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("failing took %v; want fast", took)
	}
}
