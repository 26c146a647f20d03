package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"

	"github.com/ocimirror/proxy/cluster"
	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/mirror"
)

// importRetry is how long a replica waits before trying again to import its
// local policies into a Redis that did not answer.
const importRetry = 5 * time.Second

// openMirrorJobs opens the mirroring job queue, in whose store the policies
// live too: in a cluster (coord is Redis) the store is Redis, shared by the
// replicas; on one node it is mirror.db. close releases the store.
func openMirrorJobs(cfg *config.Config, coord cluster.Coordinator, opts []mirror.JobsOption) (*mirror.Jobs, func(), error) {
	if rc, ok := coord.(*cluster.Redis); ok {
		return mirror.NewJobs(mirror.NewRedisStore(rc), opts...), func() {}, nil
	}
	path := mirrorDBPath(cfg)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	jobs, err := mirror.OpenJobs(db, opts...)
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return jobs, func() { _ = db.Close() }, nil
}

// importLocalPolicies brings the policies of this replica's mirror.db, from
// the days it ran alone, into the cluster's store (once per policy; see
// mirror.ImportPolicies). It tries again every importRetry while Redis does
// not answer, until ctx ends. Without a mirror.db it does nothing.
func importLocalPolicies(ctx context.Context, path string, to mirror.Store, log *logrus.Entry) {
	if _, err := os.Stat(path); err != nil {
		return
	}
	log = log.WithField("file", path)
	for {
		err := importOnce(ctx, path, to, log)
		if err == nil || !errors.Is(err, cluster.ErrUnavailable) {
			if err != nil {
				log.WithError(err).Error("local mirroring policies not imported into the cluster")
			}
			return
		}
		log.WithError(err).Warn("local mirroring policies not imported yet: redis unreachable; trying again")
		select {
		case <-ctx.Done():
			return
		case <-time.After(importRetry):
		}
	}
}

func importOnce(ctx context.Context, path string, to mirror.Store, log *logrus.Entry) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	res, err := mirror.ImportPolicies(ctx, db, to)
	if res.Added+res.Present > 0 {
		log.WithFields(logrus.Fields{"imported": res.Added, "alreadyshared": res.Present}).Warn(
			"this replica's local mirror.db held mirroring policies from before the cluster: imported into redis, " +
				"where every replica sees them (mirror.db is kept, and not read again for them)")
	}
	return err
}
