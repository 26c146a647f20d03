package scheduler

import (
	"context"
	"errors"
)

// Replicas that share one store share their access index too. Each keeps its
// own Index (in memory, persisted in its bbolt file) as its working model, and
// a Syncer makes the index's changes cluster-wide through a Shared backend:
// it publishes what this replica recorded, touched and removed, and merges
// what the others published (the later access wins; a removal removes an
// entry not accessed since). The replica that evicts (the evict lease's
// holder) therefore plans with every replica's accesses and entries.
//
// A single node has no Syncer: its index tracks nothing for publishing and
// costs nothing more than before.

// Change is one change of an entry, as replicas exchange them: its state
// after the change (a record or a touch), or its removal.
type Change struct {
	Entry // Key, Size and LastAccess; Expires is not exchanged (each replica's TTLs apply)
	// Removed says the entry was removed (evicted, or its content found gone);
	// LastAccess is then its last access as the remover knew it: a replica
	// that knows of a later access keeps the entry.
	Removed bool
}

// Position is where a replica is in the shared index: the generation of the
// shared state (a new one begins when the backend lost it, such as a Redis
// restarted without persistence) and the last change read from its log.
type Position struct {
	Gen    string
	Cursor string
}

// ErrResync reports that a replica's position is no longer good: the shared
// state's generation changed, or changes after the position were trimmed
// from the log before it read them. The replica must join again.
var ErrResync = errors.New("shared index: position lost, resync needed")

// Shared is the cluster's copy of the access index: a state (the latest change
// of every entry) and a log of changes, which replicas read from a position.
// cluster.SharedIndex is the Redis implementation. Every method fails fast
// when the backend is unreachable; the replica then goes on alone.
type Shared interface {
	// Join returns the current position: the generation (begun now if there
	// was none) and the end of the log.
	Join(ctx context.Context) (Position, error)
	// Snapshot returns the state: the latest change of every entry present.
	Snapshot(ctx context.Context) ([]Change, error)
	// Publish appends this replica's changes to the log and applies them to
	// the state (a later access wins, a removal removes an entry not accessed
	// since), unless the generation is no longer gen (ErrResync).
	Publish(ctx context.Context, gen string, cs []Change) error
	// Read returns the other replicas' changes after pos, about max at most,
	// the position after them, and whether more follow. ErrResync: pos is lost.
	Read(ctx context.Context, pos Position, max int) (cs []Change, next Position, more bool, err error)
}
