package main

import (
	"context"

	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/cluster"
	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/metrics"
	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
)

// startEviction runs the evictor when storage.delete.enabled; the returned func
// stops it and waits for the pass in progress. In a cluster (coord clustered)
// only the replica holding the evict lease runs passes, each after merging the
// other replicas' latest accesses (syncer, nil alone), and a blob another
// replica fills or serves (used tells; nil alone) is in use. Each pass is
// counted in m.
func startEviction(cfg *config.Config, ix *scheduler.Index, store *storage.Store, caches []*cache.Cache,
	coord cluster.Coordinator, syncer *scheduler.Syncer, used cache.ClusterUse, m *metrics.Metrics, log *logrus.Entry) func() {
	if !cfg.Storage.Delete.Enabled {
		log.Warn("storage.delete.enabled is false: nothing is ever evicted and the cache grows without bound")
		return func() {}
	}
	d := cache.Deleter{Store: store, Caches: caches, Cluster: used}
	opts := append(evictorOptions(cfg), scheduler.WithPassReport(func(st scheduler.Stats) {
		m.Evicted(st.Tags, st.Manifests, st.Links, st.Blobs, st.Bytes)
	}))
	if coord.Clustered() {
		if h, ok := coord.(cluster.Holder); ok {
			opts = append(opts, scheduler.WithClusterLease(h, 0))
		}
	}
	if syncer != nil {
		opts = append(opts, scheduler.WithRefresh(syncer.Pull))
	}
	ev := scheduler.NewEvictor(ix, d, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ev.Run(ctx) }()
	log.WithFields(logrus.Fields{"ttl": ttlSummary(cfg), "maxsize": cfg.Proxy.MaxSize.String(),
		"pins": len(cfg.Proxy.Pin), "clustered": coord.Clustered()}).Info("eviction enabled")
	return func() { cancel(); <-done }
}
