package mirror

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bucketImported records, in a replica's local mirror.db, the ids of the
// policies already imported into a shared store.
var bucketImported = []byte("importedpolicies")

// Imported is what ImportPolicies did.
type Imported struct {
	Added   int // policies now in the shared store
	Present int // already there (another replica imported the same id)
	Skipped int // imported at an earlier start: left alone
}

// ImportPolicies copies the policies of a single node's mirror.db into a
// shared store, once: each id copied is recorded in db and never copied
// again, so a policy deleted in the cluster is not brought back by the next
// start. A policy whose id the shared store has is left as it is there.
// Jobs and their logs stay behind (history; unfinished ones are not run).
func ImportPolicies(ctx context.Context, db *bolt.DB, to Store) (Imported, error) {
	var res Imported
	local, err := newBoltStore(db)
	if err != nil {
		return res, err
	}
	all, err := local.listPolicies(ctx, "", "")
	if err != nil {
		return res, fmt.Errorf("read local policies: %w", err)
	}
	for _, sp := range all {
		if local.imported(sp.Policy.ID) {
			res.Skipped++
			continue
		}
		added, err := to.addPolicy(ctx, sp)
		if err != nil {
			return res, fmt.Errorf("import policy %s: %w", sp.Policy.ID, err)
		}
		if added {
			res.Added++
		} else {
			res.Present++
		}
		if err := local.markImported(sp.Policy.ID); err != nil {
			return res, fmt.Errorf("record import of policy %s: %w", sp.Policy.ID, err)
		}
	}
	return res, nil
}

func (s *boltStore) imported(id string) bool {
	var ok bool
	_ = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImported)
		ok = b != nil && b.Get([]byte(id)) != nil
		return nil
	})
	return ok
}

func (s *boltStore) markImported(id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketImported)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), []byte{1})
	})
}
