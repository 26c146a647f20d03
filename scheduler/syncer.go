package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// Batch sizes of the exchange with the shared index: one publish call carries
// at most publishBatch changes, one read at most readBatch, and one Sync reads
// at most maxReadRounds batches (the rest waits for the next).
const (
	publishBatch  = 1000
	readBatch     = 1000
	maxReadRounds = 50
)

// Syncer keeps an Index in step with the other replicas' through a Shared
// backend: every interval it publishes this replica's changes (the outbox)
// and merges the others'. It joins the shared index at its first exchange and
// again whenever its position is lost (ErrResync):
//
//   - first join since start: the index was reconciled with the store, so it
//     merges the shared state and publishes what it knows better (entries
//     the state lacks, later accesses);
//   - same generation, log trimmed past it (it lagged or was cut off long):
//     the state is complete, so entries it lacks and nothing here waits to
//     publish were removed elsewhere and are dropped;
//   - new generation (the backend lost the state, a Redis restarted without
//     persistence): it first reconciles with the store (WithStoreWalk), then
//     merges and publishes as at the first join, so the state is rebuilt
//     from every replica's index.
//
// While the backend is unreachable every exchange fails fast: the index goes
// on recording alone, the outbox accumulates (coalesced per entry), and the
// next exchange that succeeds publishes it.
type Syncer struct {
	ix    *Index
	sh    Shared
	every time.Duration
	walk  func(ctx context.Context) ([]Entry, error) // nil: no store reconcile on a new generation
	log   *logrus.Entry

	mu     sync.Mutex // one exchange at a time; guards pos and joined
	pos    Position
	joined bool

	published, applied, joins atomic.Int64
}

// SyncOption configures a Syncer.
type SyncOption func(*Syncer)

// WithSyncInterval sets how often changes are exchanged; the default is the
// index's flush interval. It bounds how late one replica learns of another's
// accesses (one interval to publish, one to read).
func WithSyncInterval(d time.Duration) SyncOption {
	return func(s *Syncer) {
		if d > 0 {
			s.every = d
		}
	}
}

// WithStoreWalk gives the Syncer a walk of the store (every stored item, as
// Reconcile takes them), for joining a new generation of the shared index.
func WithStoreWalk(walk func(ctx context.Context) ([]Entry, error)) SyncOption {
	return func(s *Syncer) { s.walk = walk }
}

// NewSyncer returns a Syncer of ix through sh. From now on ix keeps an
// outbox of its changes. Create it after the index was reconciled with the
// store, and run one Syncer per index.
func NewSyncer(ix *Index, sh Shared, opts ...SyncOption) *Syncer {
	s := &Syncer{ix: ix, sh: sh, every: ix.flushEvery, log: ix.log}
	for _, o := range opts {
		o(s)
	}
	ix.startSharing()
	return s
}

// Run exchanges changes every interval until ctx ends, then publishes what is
// left (for five seconds at most). Stop it before closing the index.
func (s *Syncer) Run(ctx context.Context) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	failing := false
	for {
		failing = s.logOutcome(s.Sync(ctx), failing, ctx.Err() != nil)
		select {
		case <-ctx.Done():
			s.flush()
			return
		case <-t.C:
		}
	}
}

// logOutcome logs the first failure of a streak of failed exchanges and the
// recovery, each once (a failure every second is not news), and returns
// whether the streak goes on.
func (s *Syncer) logOutcome(err error, failing, stopping bool) bool {
	switch {
	case stopping:
		return failing
	case err == nil:
		if failing {
			s.log.WithField("pending", s.ix.Pending()).Info("scheduler: index exchange with the cluster works again")
		}
		return false
	case !failing:
		s.log.WithError(err).Warn("scheduler: index exchange with the cluster failed; this replica's changes wait, retrying every interval")
	default:
		s.log.WithError(err).Debug("scheduler: index exchange with the cluster failed again")
	}
	return true
}

// Sync publishes this replica's changes and merges the others', joining the
// shared index first if needed.
func (s *Syncer) Sync(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.joined {
		if err := s.join(ctx); err != nil {
			return err
		}
	}
	if err := s.lost(s.publish(ctx)); err != nil {
		return err
	}
	return s.lost(s.pull(ctx))
}

// Pull merges the others' changes now, without publishing; the evictor calls
// it before a pass so that it plans with the latest accesses. Before the
// first join it does nothing.
func (s *Syncer) Pull(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.joined {
		return nil
	}
	return s.lost(s.pull(ctx))
}

// lost notes a lost position, so the next exchange joins again.
func (s *Syncer) lost(err error) error {
	if errors.Is(err, ErrResync) && s.joined {
		s.joined = false
		s.log.WithError(err).Info("scheduler: position in the cluster's index lost; joining again")
	}
	return err
}

// flush publishes what is left, at shutdown.
func (s *Syncer) flush() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.joined {
		return
	}
	if err := s.publish(ctx); err != nil {
		s.log.WithError(err).Warn("scheduler: last index changes not published to the cluster")
	}
}

// SyncStats counts a Syncer's exchanges, for metrics.
type SyncStats struct {
	Published int64 // changes published
	Applied   int64 // changes of other replicas that changed the index
	Joins     int64 // joins of the shared index: the first, and each after a lost position
	Pending   int   // changes waiting to be published
}

// Stats returns the counts so far.
func (s *Syncer) Stats() SyncStats {
	return SyncStats{Published: s.published.Load(), Applied: s.applied.Load(), Joins: s.joins.Load(), Pending: s.ix.Pending()}
}

// publish sends the outbox in batches; what is not delivered goes back.
func (s *Syncer) publish(ctx context.Context) error {
	cs := s.ix.takeOutbox()
	for len(cs) > 0 {
		n := min(len(cs), publishBatch)
		if err := s.sh.Publish(ctx, s.pos.Gen, cs[:n]); err != nil {
			s.ix.requeueOutbox(cs)
			return fmt.Errorf("publish index changes: %w", err)
		}
		s.published.Add(int64(n))
		cs = cs[n:]
	}
	return nil
}

// pull reads and merges the others' changes since the position.
func (s *Syncer) pull(ctx context.Context) error {
	for range maxReadRounds {
		cs, next, more, err := s.sh.Read(ctx, s.pos, readBatch)
		if err != nil {
			return fmt.Errorf("read index changes: %w", err)
		}
		s.pos = next
		s.applied.Add(int64(s.ix.apply(cs)))
		if !more {
			break
		}
	}
	return nil
}
