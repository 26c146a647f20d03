package cluster

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/redis/go-redis/v9"

	"github.com/ocimirror/proxy/scheduler"
)

// How changes of the shared index are written in Redis (see index.go).

// accessString writes t as 19 digits of Unix nanoseconds, so that string
// order is time order (until the year 2262).
func accessString(t time.Time) string {
	return fmt.Sprintf("%019d", max(t.UnixNano(), 0))
}

func parseAccess(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("access %q: not Unix nanoseconds", s)
	}
	return time.Unix(0, n), nil
}

// changeArgs are the publish script's five arguments for c.
func changeArgs(c scheduler.Change) []any {
	removed := "0"
	if c.Removed {
		removed = "1"
	}
	return []any{c.Key.Identity(), removed, accessString(c.LastAccess), strconv.FormatInt(c.Size, 10), c.Digest.String()}
}

// decodeChange builds a change from its written fields.
func decodeChange(identity, removed, access, size, target string) (scheduler.Change, error) {
	k, err := scheduler.ParseIdentity(identity, digest.Digest(target))
	if err != nil {
		return scheduler.Change{}, err
	}
	at, err := parseAccess(access)
	if err != nil {
		return scheduler.Change{}, err
	}
	n, err := strconv.ParseInt(size, 10, 64)
	if err != nil || n < 0 {
		return scheduler.Change{}, fmt.Errorf("size %q: not a byte count", size)
	}
	return scheduler.Change{Entry: scheduler.Entry{Key: k, Size: n, LastAccess: at}, Removed: removed == "1"}, nil
}

// decodeState reads one field and value of the state hash.
func decodeState(identity, value string) (scheduler.Change, error) {
	f := strings.SplitN(value, " ", 3)
	if len(f) != 3 {
		return scheduler.Change{}, fmt.Errorf("shared index entry %q: malformed value %q", identity, value)
	}
	return decodeChange(identity, "0", f[0], f[1], f[2])
}

// decodeMessage reads one change of the log.
func decodeMessage(v map[string]any) (scheduler.Change, error) {
	s := func(k string) string { x, _ := v[k].(string); return x }
	return decodeChange(s("k"), s("r"), s("a"), s("s"), s("t"))
}

// parseReadReply reads the read script's reply: the sequence number of the
// log's first entry (0: empty), and the entries after the cursor.
func parseReadReply(reply any) (first uint64, msgs []redis.XMessage, err error) {
	top, ok := reply.([]any)
	if !ok || len(top) != 2 {
		return 0, nil, fmt.Errorf("unexpected reply %T", reply)
	}
	s, _ := top[0].(string)
	if first, err = strconv.ParseUint(s, 10, 64); err != nil {
		return 0, nil, fmt.Errorf("first sequence number %q: %w", s, err)
	}
	entries, _ := top[1].([]any)
	for _, e := range entries {
		m, err := parseMessage(e)
		if err != nil {
			return 0, nil, err
		}
		msgs = append(msgs, m)
	}
	return first, msgs, nil
}

// parseCursor splits a position's cursor into the stream id and sequence
// number of the last entry read.
func parseCursor(c string) (id string, seq uint64, err error) {
	id, s, ok := strings.Cut(c, " ")
	if ok {
		seq, err = strconv.ParseUint(s, 10, 64)
	}
	if !ok || err != nil || id == "" {
		return "", 0, fmt.Errorf("malformed position %q", c)
	}
	return id, seq, nil
}

// parseMessage reads one stream entry of a script's reply: {id, {field, value, ...}}.
func parseMessage(e any) (redis.XMessage, error) {
	pair, ok := e.([]any)
	if !ok || len(pair) != 2 {
		return redis.XMessage{}, fmt.Errorf("unexpected log entry %T", e)
	}
	id, _ := pair[0].(string)
	kv, _ := pair[1].([]any)
	m := redis.XMessage{ID: id, Values: make(map[string]any, len(kv)/2)}
	for i := 0; i+1 < len(kv); i += 2 {
		k, _ := kv[i].(string)
		m.Values[k] = kv[i+1]
	}
	return m, nil
}
