package cache

import (
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// DefaultRedirectGrace is how long a blob answered with a redirect counts as
// read: the client fetches it from the backend after the answer, out of the
// proxy's sight. The backend's URL lives 20 minutes (distribution's s3, gcs
// and azure drivers); holding every redirected blob that long would keep
// expired content for nothing, while a client follows a 307 at once, so a
// minute covers its request with a wide margin. A download from the backend
// that outlasts the grace is not covered: the proxy cannot see it.
const DefaultRedirectGrace = time.Minute

// readerShards is how many locks the counts are spread over: hits of
// different blobs seldom wait for each other.
const readerShards = 16

// Readers counts the clients reading each stored blob right now: from the
// moment a hit is opened for a client until its response is finished or the
// client left (Blob.Close), and, for a hit answered with a redirect, until
// the grace after the answer ended. The evictor leaves such a blob alone
// (Deleter.InUse), and in a cluster the replica publishes the set (Serving)
// for the evicting replica. One Readers may be shared by several caches.
type Readers struct {
	grace   time.Duration
	now     func() time.Time
	changed chan struct{} // a blob got its first reader: publish early
	shards  [readerShards]readerShard
}

type readerShard struct {
	mu    sync.Mutex
	count map[digest.Digest]int
	until map[digest.Digest]time.Time // redirect answers: read until then
}

// NewReaders returns an empty count with the redirect grace (0: the default).
func NewReaders(grace time.Duration) *Readers {
	if grace <= 0 {
		grace = DefaultRedirectGrace
	}
	r := &Readers{grace: grace, now: time.Now, changed: make(chan struct{}, 1)}
	for i := range r.shards {
		r.shards[i].count = make(map[digest.Digest]int)
		r.shards[i].until = make(map[digest.Digest]time.Time)
	}
	return r
}

// shard picks d's lock by the last hex digit of the digest.
func (r *Readers) shard(d digest.Digest) *readerShard {
	var i byte
	if n := len(d); n > 0 {
		c := d[n-1]
		switch {
		case c >= '0' && c <= '9':
			i = c - '0'
		case c >= 'a' && c <= 'f':
			i = c - 'a' + 10
		default:
			i = c % readerShards
		}
	}
	return &r.shards[i]
}

// add counts one more reader of d.
func (r *Readers) add(d digest.Digest) {
	s := r.shard(d)
	s.mu.Lock()
	s.count[d]++
	first := s.count[d] == 1
	s.mu.Unlock()
	if first {
		r.signal()
	}
}

// done counts one reader of d less.
func (r *Readers) done(d digest.Digest) {
	s := r.shard(d)
	s.mu.Lock()
	if s.count[d] <= 1 {
		delete(s.count, d)
	} else {
		s.count[d]--
	}
	s.mu.Unlock()
}

// redirected counts d as read for the grace from now.
func (r *Readers) redirected(d digest.Digest) {
	until := r.now().Add(r.grace)
	s := r.shard(d)
	s.mu.Lock()
	_, known := s.until[d]
	if until.After(s.until[d]) {
		s.until[d] = until
	}
	s.mu.Unlock()
	if !known {
		r.signal()
	}
}

// signal wakes the publisher (Changed) without ever blocking a hit.
func (r *Readers) signal() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// Changed receives when a blob got its first reader since the last receive,
// so that a cluster publisher sends the set sooner than its next tick.
func (r *Readers) Changed() <-chan struct{} { return r.changed }

// InUse reports whether a client reads d now (or was redirected to it within
// the grace).
func (r *Readers) InUse(d digest.Digest) bool {
	s := r.shard(d)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.count[d] > 0 {
		return true
	}
	until, ok := s.until[d]
	if ok && !r.now().Before(until) {
		delete(s.until, d)
		return false
	}
	return ok
}

// Serving returns the digests read now, sorted, dropping ended graces.
func (r *Readers) Serving() []digest.Digest {
	now := r.now()
	var out []digest.Digest
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for d := range s.count {
			out = append(out, d)
		}
		for d, until := range s.until {
			switch {
			case !now.Before(until):
				delete(s.until, d)
			case s.count[d] == 0:
				out = append(out, d)
			}
		}
		s.mu.Unlock()
	}
	slices.Sort(out)
	return out
}

// WithReaders makes the cache count its readers in r, so that caches of
// several upstreams on one store share one count (and one published set).
// Without it each cache counts its own.
func WithReaders(r *Readers) Option { return func(c *Cache) { c.readers = r } }

// Readers returns the count of the cache's readers.
func (c *Cache) Readers() *Readers { return c.readers }
