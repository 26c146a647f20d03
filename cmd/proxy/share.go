package main

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/cluster"
	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
)

// startIndexSync shares the access index with the other replicas when coord
// is Redis: a Syncer publishes this replica's records, touches and removals
// and merges the others', so that the evicting replica plans with the whole
// cluster's accesses. Alone it does nothing and returns a nil Syncer. The
// returned func stops the Syncer after it published what was left.
func startIndexSync(ix *scheduler.Index, store *storage.Store, coord cluster.Coordinator, reg prometheus.Registerer, log *logrus.Entry) (*scheduler.Syncer, func()) {
	r, ok := coord.(*cluster.Redis)
	if !ok || !coord.Clustered() {
		return nil, func() {}
	}
	walk := func(ctx context.Context) ([]scheduler.Entry, error) {
		present, _, err := walkEntries(ctx, store, nil)
		return present, err
	}
	s := scheduler.NewSyncer(ix, cluster.NewSharedIndex(r, 0), scheduler.WithStoreWalk(walk))
	registerSync(reg, s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	log.Info("access index shared with the cluster through redis: accesses and entries of every replica reach the evicting one")
	return s, func() { cancel(); <-done }
}

// registerSync adds the Syncer's counts to reg.
func registerSync(reg prometheus.Registerer, s *scheduler.Syncer) {
	counter := func(name, help string, v func(scheduler.SyncStats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v(s.Stats())) })
	}
	reg.MustRegister(
		counter("proxy_index_sync_published_total", "Index changes (records, touches, removals) this replica published to the cluster.",
			func(st scheduler.SyncStats) int64 { return st.Published }),
		counter("proxy_index_sync_applied_total", "Index changes of other replicas merged into this replica's index.",
			func(st scheduler.SyncStats) int64 { return st.Applied }),
		counter("proxy_index_sync_joins_total", "Joins of the cluster's index: the first, and one after each lost position (log trimmed, Redis state lost).",
			func(st scheduler.SyncStats) int64 { return st.Joins }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "proxy_index_sync_pending",
			Help: "Index changes waiting to be published: grows while Redis is unreachable, published when it is back."},
			func() float64 { return float64(s.Stats().Pending) }),
	)
}
