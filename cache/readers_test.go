package cache

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// fakeClock is a settable now for the redirect grace.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newTestReaders(grace time.Duration) (*Readers, *fakeClock) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	r := NewReaders(grace)
	r.now = clk.now
	return r, clk
}

// TestReadersCount: a blob is in use from its first reader's open to its
// last reader's close, and listed meanwhile; a blob never read is not.
func TestReadersCount(t *testing.T) {
	r, _ := newTestReaders(0)
	a, b := digest.FromString("a"), digest.FromString("b")
	r.add(a)
	r.add(a)
	r.done(a)
	if !r.InUse(a) || r.InUse(b) {
		t.Fatalf("one reader of a left: InUse(a) %v, InUse(b) %v; want true, false", r.InUse(a), r.InUse(b))
	}
	if got := r.Serving(); !slices.Equal(got, []digest.Digest{a}) {
		t.Fatalf("Serving = %v, want [a]", got)
	}
	r.done(a)
	if r.InUse(a) || len(r.Serving()) != 0 {
		t.Fatalf("no reader left: InUse(a) %v, Serving %v; want false, none", r.InUse(a), r.Serving())
	}
	r.done(a) // one too many never goes negative
	r.add(a)
	if !r.InUse(a) {
		t.Fatal("a reader after an extra done is not counted")
	}
}

// TestReadersRedirectGrace: a blob answered with a redirect is in use for
// the grace after the last such answer, and not after.
func TestReadersRedirectGrace(t *testing.T) {
	r, clk := newTestReaders(time.Minute)
	d := digest.FromString("redirected")
	r.redirected(d)
	clk.add(40 * time.Second)
	r.redirected(d) // a second client: the grace starts again
	clk.add(40 * time.Second)
	if !r.InUse(d) || !slices.Equal(r.Serving(), []digest.Digest{d}) {
		t.Fatalf("40s after the last redirect: InUse %v, Serving %v; want in use", r.InUse(d), r.Serving())
	}
	clk.add(21 * time.Second)
	if r.InUse(d) || len(r.Serving()) != 0 {
		t.Fatalf("past the grace: InUse %v, Serving %v; want free", r.InUse(d), r.Serving())
	}
}

// TestReadersChanged: a blob's first reader signals the publisher once; more
// readers of it do not.
func TestReadersChanged(t *testing.T) {
	r, _ := newTestReaders(0)
	d := digest.FromString("x")
	r.add(d)
	r.add(d)
	select {
	case <-r.Changed():
	default:
		t.Fatal("no signal for a blob's first reader")
	}
	select {
	case <-r.Changed():
		t.Fatal("a second signal for a blob already read")
	default:
	}
}

// BenchmarkReadersHit is what counting costs a warm hit: one add at the
// open and one done at the close, over many blobs as a busy cache sees.
func BenchmarkReadersHit(b *testing.B) {
	r := NewReaders(0)
	ds := make([]digest.Digest, 1024)
	for i := range ds {
		ds[i] = digest.FromString(fmt.Sprint(i))
	}
	b.Run("serial", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			d := ds[i%len(ds)]
			r.add(d)
			r.done(d)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				d := ds[i%len(ds)]
				r.add(d)
				r.done(d)
			}
		})
	})
}
