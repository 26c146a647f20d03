package scheduler

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The bbolt file has two buckets: meta holds the format version, entries holds one
// pair per entry (encoding in key.go).
var (
	metaBucket    = []byte("meta")
	entriesBucket = []byte("entries")
	versionKey    = []byte("version")
	formatVersion = []byte("1")
)

// lockTimeout bounds the wait for another process's file lock.
const lockTimeout = time.Second

// corruptError marks a file that cannot be used as an index; Open sets it aside.
type corruptError struct{ err error }

func (e *corruptError) Error() string { return "corrupt index: " + e.err.Error() }
func (e *corruptError) Unwrap() error { return e.err }

// open opens the file, setting it aside and starting anew if it is corrupt.
func (ix *Index) open() error {
	if err := os.MkdirAll(filepath.Dir(ix.path), 0o750); err != nil {
		return fmt.Errorf("open index %s: %w", ix.path, err)
	}
	err := ix.tryOpen()
	var corrupt *corruptError
	if !errors.As(err, &corrupt) {
		return err
	}
	aside := fmt.Sprintf("%s.corrupt-%d", ix.path, time.Now().Unix())
	if rerr := os.Rename(ix.path, aside); rerr != nil {
		return fmt.Errorf("open index %s: %w; setting it aside failed: %w", ix.path, err, rerr)
	}
	ix.log.WithError(err).WithField("path", ix.path).WithField("moved_to", aside).
		Warn("scheduler: index file is corrupt; set aside, starting a new index to be rebuilt from storage")
	ix.reset()
	if err := ix.tryOpen(); err != nil {
		return err
	}
	ix.rebuilt = true
	return nil
}

// tryOpen opens and loads the file; a *corruptError means it is unusable.
func (ix *Index) tryOpen() error {
	db, err := openDB(ix.path)
	if err != nil {
		return fmt.Errorf("open index %s: %w", ix.path, err)
	}
	if err := ix.load(db); err != nil {
		_ = db.Close()
		return fmt.Errorf("open index %s: %w", ix.path, err)
	}
	ix.db = db
	return nil
}

// openDB opens the bbolt file, telling a lock held elsewhere and I/O errors
// (returned as they are) from a damaged file (a *corruptError).
func openDB(path string) (db *bolt.DB, err error) {
	// A damaged file can make bbolt fault on its memory map or panic; both mean
	// corrupt. (SetPanicOnFault covers this goroutine only.)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer recoverCorrupt(&err)
	db, err = bolt.Open(path, 0o640, &bolt.Options{Timeout: lockTimeout, FreelistType: bolt.FreelistMapType})
	var pathErr *fs.PathError
	var errno syscall.Errno
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, ErrInUse
	case errors.As(err, &pathErr), errors.As(err, &errno):
		return nil, err
	}
	return nil, &corruptError{err}
}

func recoverCorrupt(err *error) {
	if r := recover(); r != nil {
		*err = &corruptError{fmt.Errorf("bbolt panicked: %v", r)}
	}
}

// load checks the file and reads every entry into memory; a fresh file gets its
// buckets.
func (ix *Index) load(db *bolt.DB) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer recoverCorrupt(&err)
	var recs []record
	fresh := false
	err = db.View(func(tx *bolt.Tx) error {
		if err := checkFile(tx); err != nil {
			return err
		}
		fresh = tx.Bucket(metaBucket) == nil
		recs, err = readEntries(tx)
		if err != nil {
			return err
		}
		return checkTree(tx) // after our own read, which survives a fault
	})
	if err != nil {
		return err
	}
	if fresh {
		if err := db.Update(createBuckets); err != nil {
			return fmt.Errorf("create buckets: %w", err)
		}
	}
	all := make([]*entry, len(recs))
	for i, r := range recs {
		all[i] = &entry{id: r.id, target: r.target, size: r.size, access: r.access}
		ix.add(all[i])
	}
	ix.rebuildLanes(all)
	return nil
}

// checkFile reports a truncated file or one of another format.
func checkFile(tx *bolt.Tx) error {
	fi, err := os.Stat(tx.DB().Path())
	if err != nil {
		return err
	}
	if fi.Size() < tx.Size() {
		return &corruptError{fmt.Errorf("truncated: %d bytes, %d expected", fi.Size(), tx.Size())}
	}
	if m := tx.Bucket(metaBucket); m != nil && !bytes.Equal(m.Get(versionKey), formatVersion) {
		return &corruptError{fmt.Errorf("unknown format version %q", m.Get(versionKey))}
	}
	return nil
}

func readEntries(tx *bolt.Tx) ([]record, error) {
	b := tx.Bucket(entriesBucket)
	if b == nil {
		return nil, nil
	}
	recs := make([]record, 0, b.Stats().KeyN)
	err := b.ForEach(func(k, v []byte) error {
		r, err := decodeRecord(k, v)
		if err != nil {
			return &corruptError{err}
		}
		recs = append(recs, r)
		return nil
	})
	return recs, err
}

// checkTree runs bbolt's consistency check and returns its first finding.
func checkTree(tx *bolt.Tx) error {
	var first error
	for err := range tx.Check() {
		if first == nil {
			first = &corruptError{fmt.Errorf("consistency check: %w", err)}
		}
	}
	return first
}

func createBuckets(tx *bolt.Tx) error {
	m, err := tx.CreateBucketIfNotExists(metaBucket)
	if err != nil {
		return err
	}
	if err := m.Put(versionKey, formatVersion); err != nil {
		return err
	}
	_, err = tx.CreateBucketIfNotExists(entriesBucket)
	return err
}

// flushLoop writes pending changes every flush interval until Close.
func (ix *Index) flushLoop() {
	defer close(ix.done)
	t := time.NewTicker(ix.flushEvery)
	defer t.Stop()
	for {
		select {
		case <-ix.quit:
			return
		case <-t.C:
			if err := ix.Flush(); err != nil {
				ix.log.WithError(err).Error("scheduler: index flush failed; will retry")
			}
		}
	}
}

// Flush writes pending records, touches and removals now, in one transaction. On
// failure they stay pending.
func (ix *Index) Flush() error {
	ix.flushMu.Lock()
	defer ix.flushMu.Unlock()
	recs, dels := ix.takePending()
	if len(recs) == 0 && len(dels) == 0 {
		return nil
	}
	err := ix.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(entriesBucket)
		for _, i := range dels { // before puts: an entry removed and recorded again stays
			if err := b.Delete(i.encode()); err != nil {
				return fmt.Errorf("delete %s %s %s: %w", i.kind, i.repo, i.ref, err)
			}
		}
		for _, p := range sortedPairs(recs) {
			if err := b.Put(p.k, p.v); err != nil {
				return fmt.Errorf("write %q: %w", p.k, err)
			}
		}
		return nil
	})
	ix.commits.Add(1)
	if err != nil {
		ix.requeue(recs, dels)
		return fmt.Errorf("flush index %s: %w", ix.path, err)
	}
	return nil
}

// sortedPairs encodes records in key order: bbolt splits nodes only at commit,
// so many puts in random order into one transaction cost quadratic time (14s
// for 100k new entries), in order they append.
func sortedPairs(recs []record) []struct{ k, v []byte } {
	pairs := make([]struct{ k, v []byte }, len(recs))
	for i, r := range recs {
		pairs[i].k, pairs[i].v = r.id.encode(), r.value()
	}
	slices.SortFunc(pairs, func(a, b struct{ k, v []byte }) int { return bytes.Compare(a.k, b.k) })
	return pairs
}

// takePending snapshots what the next transaction writes. The dirty slice is
// swapped with the spare one, so steady touching does not allocate.
func (ix *Index) takePending() ([]record, []id) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	batch := ix.dirty
	ix.dirty = ix.spare[:0]
	recs := make([]record, 0, len(batch))
	for _, x := range batch {
		x.dirty = false
		if !x.gone {
			recs = append(recs, x.record())
		}
	}
	clear(batch)
	ix.spare = batch[:0]
	dels := ix.deletes
	ix.deletes = nil
	return recs, dels
}

// requeue puts back what a failed flush did not write.
func (ix *Index) requeue(recs []record, dels []id) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, r := range recs {
		if x, ok := ix.entries[r.id]; ok {
			ix.markDirty(x)
		}
	}
	ix.deletes = append(dels, ix.deletes...)
}
