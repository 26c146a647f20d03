package auth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// verified remembers Basic credentials that passed the htpasswd check, so a
// client that sends them on every request (docker does, once logged in) costs
// one bcrypt comparison per verifiedTTL instead of one per request: at the
// usual cost of 10 that is some 50 ms of CPU, more than serving a cached
// blob. Entries are keyed by a SHA-256 of the whole Authorization header, so
// the table holds no password; a changed htpasswd file takes effect within
// verifiedTTL.
const (
	verifiedTTL   = 30 * time.Second
	verifiedLimit = 10000
)

type verified struct {
	mu sync.Mutex
	m  map[[32]byte]verifiedEntry
}

type verifiedEntry struct {
	user    string
	expires time.Time
}

func (v *verified) get(header string, now time.Time) (string, bool) {
	k := sha256.Sum256([]byte(header))
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.m[k]
	if !ok || now.After(e.expires) {
		return "", false
	}
	return e.user, true
}

func (v *verified) put(header, user string, now time.Time) {
	k := sha256.Sum256([]byte(header))
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil || len(v.m) >= verifiedLimit {
		v.m = map[[32]byte]verifiedEntry{} // start over: cheaper than tracking age
	}
	v.m[k] = verifiedEntry{user: user, expires: now.Add(verifiedTTL)}
}
