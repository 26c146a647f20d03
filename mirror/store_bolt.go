package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketPolicies = []byte("policies")
	bucketJobs     = []byte("jobs")
	bucketLogs     = []byte("joblogs")
)

// boltStore keeps policies, jobs and job logs in one replica's bbolt file
// (mirror.db): the single-node store.
type boltStore struct{ db *bolt.DB }

// NewBoltStore returns the store in db, creating its buckets.
func NewBoltStore(db *bolt.DB) (Store, error) {
	return newBoltStore(db)
}

func newBoltStore(db *bolt.DB) (*boltStore, error) {
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketPolicies, bucketJobs, bucketLogs} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open mirroring store: %w", err)
	}
	return &boltStore{db: db}, nil
}

// Shared is false: one replica uses the file.
func (s *boltStore) Shared() bool { return false }

// firstInSlot is always true: nobody else schedules.
func (s *boltStore) firstInSlot(context.Context, string, time.Duration) (bool, error) {
	return true, nil
}

func (s *boltStore) addPolicy(_ context.Context, sp storedPolicy) (bool, error) {
	v, err := json.Marshal(sp)
	if err != nil {
		return false, err
	}
	added := false
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPolicies)
		if b.Get([]byte(sp.Policy.ID)) != nil {
			return nil
		}
		added = true
		return b.Put([]byte(sp.Policy.ID), v)
	})
	return added, err
}

func (s *boltStore) getPolicy(_ context.Context, id string) (storedPolicy, error) {
	var sp storedPolicy
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketPolicies).Get([]byte(id))
		if v == nil {
			return ErrPolicyNotFound
		}
		return json.Unmarshal(v, &sp)
	})
	return sp, err
}

// updatePolicy changes policy id in one transaction.
func (s *boltStore) updatePolicy(_ context.Context, id string, change func(*storedPolicy) error) (storedPolicy, error) {
	var sp storedPolicy
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPolicies)
		v := b.Get([]byte(id))
		if v == nil {
			return ErrPolicyNotFound
		}
		if err := json.Unmarshal(v, &sp); err != nil {
			return err
		}
		if err := change(&sp); err != nil {
			return err
		}
		nv, err := json.Marshal(sp)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), nv)
	})
	return sp, err
}

func (s *boltStore) deletePolicy(_ context.Context, id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPolicies)
		if b.Get([]byte(id)) == nil {
			return ErrPolicyNotFound
		}
		return b.Delete([]byte(id))
	})
}

// listPolicies walks the bucket in key order, which is creation order (ids
// are time-ordered).
func (s *boltStore) listPolicies(_ context.Context, kind Kind, repo string) ([]storedPolicy, error) {
	var out []storedPolicy
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPolicies).ForEach(func(_, v []byte) error {
			if sp, ok := matchPolicy(v, kind, repo); ok {
				out = append(out, sp)
			}
			return nil
		})
	})
	return out, err
}

// matchPolicy decodes a stored policy and says whether it is of kind and of
// repo (any when empty).
func matchPolicy(v []byte, kind Kind, repo string) (storedPolicy, bool) {
	var sp storedPolicy
	if json.Unmarshal(v, &sp) != nil || (kind != "" && sp.Kind != kind) || (repo != "" && sp.Policy.LocalRepository != repo) {
		return storedPolicy{}, false
	}
	return sp, true
}
