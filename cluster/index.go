package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/ocimirror/proxy/scheduler"
)

// The shared access index lives in three keys. The hash tag {index} puts them
// in one slot of a Redis Cluster, as the scripts that use several need.
//
//	gen    a random token naming the generation of the state; a Redis that
//	       lost its data (restarted without persistence, keys evicted) has
//	       none, and the next replica to join begins a new one
//	state  a hash: entry identity -> "access size target", the latest
//	       change of every entry present (access: 19-digit Unix nanoseconds,
//	       so that string order is time order)
//	log    a stream of changes, one entry each (fields n: sequence number,
//	       o: origin replica, k: identity, r: "1" for a removal, a, s, t),
//	       trimmed to about the configured length
//	seq    the last sequence number given
//
// None has a TTL, so a Redis with a volatile-* maxmemory-policy never evicts
// them; with an allkeys-* policy an evicted generation is a new one (every
// replica joins again), an evicted log a trimmed one.
//
// A reader's position (scheduler.Position.Cursor) is "<stream id> <sequence
// number>" of the last entry it read: it lost changes when the log's first
// entry has a sequence number beyond the next one.
const (
	indexGenKey   = Prefix + "{index}:gen"
	indexStateKey = Prefix + "{index}:state"
	indexLogKey   = Prefix + "{index}:log"
	indexSeqKey   = Prefix + "{index}:seq"
)

// indexKeys are the keys the join and publish scripts take.
var indexKeys = []string{indexGenKey, indexStateKey, indexLogKey, indexSeqKey}

// DefaultIndexLogLength is about how many changes the log keeps: a replica
// that falls further behind (cut off from Redis meanwhile) joins again from
// the state. At 5000 changes a second it is 20 s of changes, many times
// what a replica exchanging every second needs.
const DefaultIndexLogLength = 100_000

// SharedIndex is the Redis implementation of scheduler.Shared, on the
// coordinator's client: it fails fast while the coordinator is degraded, and
// its failures and recoveries count as the coordinator's.
type SharedIndex struct {
	r      *Redis
	origin string // this replica, so that it skips its own changes in the log
	maxLen int64
}

var _ scheduler.Shared = (*SharedIndex)(nil)

// NewSharedIndex returns the shared index on r's Redis; logLength is about
// how many changes the log keeps (0: DefaultIndexLogLength).
func NewSharedIndex(r *Redis, logLength int64) *SharedIndex {
	if logLength <= 0 {
		logLength = DefaultIndexLogLength
	}
	return &SharedIndex{r: r, origin: newToken(), maxLen: logLength}
}

// Join returns the generation (beginning one, on an empty state and log, if
// there is none) and the log's last id.
func (x *SharedIndex) Join(ctx context.Context) (scheduler.Position, error) {
	var pos scheduler.Position
	err := x.do(ctx, func(ctx context.Context) error {
		v, err := joinScript.Run(ctx, x.r.client, indexKeys, newToken()).StringSlice()
		if err == nil && len(v) != 3 {
			err = fmt.Errorf("join script returned %d values", len(v))
		}
		if err == nil {
			pos = scheduler.Position{Gen: v[0], Cursor: v[1] + " " + v[2]}
		}
		return err
	})
	if err != nil {
		return pos, fmt.Errorf("join the shared index: %w", err)
	}
	return pos, nil
}

// Publish applies cs to the state and appends them to the log, in one script.
func (x *SharedIndex) Publish(ctx context.Context, gen string, cs []scheduler.Change) error {
	args := make([]any, 0, 3+5*len(cs))
	args = append(args, gen, x.maxLen, x.origin)
	for _, c := range cs {
		args = append(args, changeArgs(c)...)
	}
	err := x.do(ctx, func(ctx context.Context) error {
		return publishScript.Run(ctx, x.r.client, indexKeys, args...).Err()
	})
	if err != nil {
		return fmt.Errorf("publish %d index changes: %w", len(cs), err)
	}
	return nil
}

// Snapshot reads the state with HSCAN, a page at a time.
func (x *SharedIndex) Snapshot(ctx context.Context) ([]scheduler.Change, error) {
	var out []scheduler.Change
	var cursor uint64
	for {
		var kv []string
		err := x.do(ctx, func(ctx context.Context) error {
			var err error
			kv, cursor, err = x.r.client.HScan(ctx, indexStateKey, cursor, "", 1000).Result()
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("read the shared index: %w", err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			c, err := decodeState(kv[i], kv[i+1])
			if err != nil {
				x.r.log.WithError(err).Warn("shared index: skipping a malformed entry")
				continue
			}
			out = append(out, c)
		}
		if cursor == 0 {
			return out, nil
		}
	}
}

// Read returns the other replicas' changes after pos.Cursor, or
// scheduler.ErrResync when the generation changed or the log was trimmed
// past the cursor.
func (x *SharedIndex) Read(ctx context.Context, pos scheduler.Position, max int) ([]scheduler.Change, scheduler.Position, bool, error) {
	id, seq, err := parseCursor(pos.Cursor)
	if err != nil {
		return nil, pos, false, fmt.Errorf("read the index log: %w", err)
	}
	var reply any
	err = x.do(ctx, func(ctx context.Context) error {
		var err error
		reply, err = readScript.Run(ctx, x.r.client, []string{indexGenKey, indexLogKey}, pos.Gen, id, max).Result()
		return err
	})
	if err != nil {
		return nil, pos, false, fmt.Errorf("read the index log: %w", err)
	}
	first, msgs, err := parseReadReply(reply)
	switch {
	case err != nil:
		return nil, pos, false, fmt.Errorf("read the index log: %w", err)
	case first > seq+1:
		return nil, pos, false, fmt.Errorf("read the index log after change %d (the first kept is %d): %w", seq, first, errTrimmed)
	}
	cs, cursor := x.changes(msgs, seq)
	if cursor != "" {
		pos.Cursor = cursor
	}
	return cs, pos, len(msgs) >= max, nil
}

// changes decodes the log entries msgs, skipping this replica's own, and
// returns the cursor after the last ("" if none); seq is the sequence
// number of the entry before them.
func (x *SharedIndex) changes(msgs []redis.XMessage, seq uint64) ([]scheduler.Change, string) {
	cs := make([]scheduler.Change, 0, len(msgs))
	cursor := ""
	for _, m := range msgs {
		if n, err := strconv.ParseUint(fmt.Sprint(m.Values["n"]), 10, 64); err == nil {
			seq = n
		}
		cursor = m.ID + " " + strconv.FormatUint(seq, 10)
		if m.Values["o"] == x.origin {
			continue
		}
		c, err := decodeMessage(m.Values)
		if err != nil {
			x.r.log.WithError(err).WithField("id", m.ID).Warn("shared index: skipping a malformed change")
			continue
		}
		cs = append(cs, c)
	}
	return cs, cursor
}

// errTrimmed is a lost position: changes after it were trimmed from the log.
var errTrimmed = fmt.Errorf("changes trimmed from the log: %w", scheduler.ErrResync)

// do runs one operation with the coordinator's fail-fast context, telling a
// refused generation (ErrResync) and other replies of Redis (an answer: Redis
// is up) from a failure to reach it (ErrUnavailable).
func (x *SharedIndex) do(ctx context.Context, op func(context.Context) error) error {
	opCtx, cancel, err := x.r.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	err = op(opCtx)
	var reply redis.Error
	if errors.As(err, &reply) && !errors.Is(err, redis.Nil) {
		x.r.setDown(false, nil)
		if strings.HasPrefix(reply.Error(), "RESYNC") {
			return fmt.Errorf("%s: %w", reply.Error(), scheduler.ErrResync)
		}
		return fmt.Errorf("redis: %w", err)
	}
	return x.r.result(opCtx, err)
}
