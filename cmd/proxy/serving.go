package main

import (
	"context"

	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/cluster"
)

// startServing publishes the blobs this replica's clients read (readers) to
// the cluster when coord is Redis, and returns what tells the evictor which
// blobs the replicas use (their fill leases, their readers). Alone it does
// nothing and returns nil. The returned func stops publishing and withdraws
// this replica's set.
func startServing(coord cluster.Coordinator, readers *cache.Readers, log *logrus.Entry) (cache.ClusterUse, func()) {
	r, ok := coord.(*cluster.Redis)
	if !ok || !coord.Clustered() {
		return nil, func() {}
	}
	s := cluster.NewServing(r, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx, readers.Serving, readers.Changed()) }()
	log.Debug("blobs read by this replica's clients published to the cluster: the evicting replica leaves them alone")
	return s, func() { cancel(); <-done }
}
