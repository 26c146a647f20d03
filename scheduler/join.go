package scheduler

import (
	"context"
	"fmt"

	"github.com/sirupsen/logrus"
)

// join takes the current position, then merges the shared state as the
// Syncer's doc says for each case. The position is taken before the state is
// read, so what changes meanwhile is read again from the log: merging is
// idempotent (the later access wins), so seeing a change twice is harmless.
func (s *Syncer) join(ctx context.Context) error {
	pos, err := s.sh.Join(ctx)
	if err != nil {
		return fmt.Errorf("join the cluster's index: %w", err)
	}
	first := s.pos.Gen == ""
	newGen := !first && pos.Gen != s.pos.Gen
	if newGen {
		if err := s.reconcileStore(ctx); err != nil {
			return err
		}
	}
	state, err := s.sh.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("read the cluster's index: %w", err)
	}
	applied, queued, dropped := s.ix.mergeSnapshot(state, !first && !newGen)
	s.pos, s.joined = pos, true
	s.joins.Add(1)
	s.log.WithFields(logrus.Fields{
		"entries": len(state), "applied": applied, "to_publish": queued, "dropped": dropped,
		"first": first, "new_generation": newGen,
	}).Info("scheduler: joined the cluster's access index")
	return nil
}

// reconcileStore makes the index match the store before a new generation is
// built from it, so that no replica publishes entries whose content another
// replica evicted while the state was lost. Entries accessed since the walk
// began stay: the replica serves meanwhile.
func (s *Syncer) reconcileStore(ctx context.Context) error {
	if s.walk == nil {
		return nil
	}
	since := s.ix.now().UnixNano()
	present, err := s.walk(ctx)
	if err != nil {
		return fmt.Errorf("walk the store for a new generation of the cluster's index: %w", err)
	}
	added, dropped, err := s.ix.reconcile(ctx, present, since)
	if err != nil {
		return err
	}
	s.log.WithFields(logrus.Fields{"added": added, "dropped": dropped}).
		Info("scheduler: index reconciled with the store for a new generation of the cluster's index")
	return nil
}
