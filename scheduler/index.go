// Package scheduler keeps the access index of the pull-through cache and plans
// evictions from it.
//
// Every stored item (a blob linked in a repository, a manifest revision, a tag) has
// an entry with its size and last access. The whole index lives in memory, ordered
// by last access, and is persisted in a bbolt file by a batched flush: recording
// and touching entries never waits for the disk, and a crash loses at most the
// last flush interval of access times, never the index.
//
// An Evictor deletes what expired (nobody pulled it within the TTL of its
// repository: WithTTL, or WithRepoTTL for a repository prefix such as an
// upstream's host) and, above a size cap, what was least recently used,
// through a Deleter the caller supplies; it never evicts what is pinned
// (WithPinned). Its Plan is the same pass as a dry run.
//
// Replicas that share one store share their indexes (share.go): a Syncer
// publishes what its index recorded, touched and removed through a Shared
// backend (Redis) and merges the other replicas' changes, so the one replica
// that evicts (WithClusterLease) plans with the whole cluster's accesses. A
// single node has no Syncer and pays nothing for it.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"
)

// Defaults for Open.
const (
	DefaultTTL           = 168 * time.Hour
	DefaultFlushInterval = time.Second
)

// ErrInUse reports an index file that another process (or another Index in this
// one) holds open.
var ErrInUse = errors.New("storage root is in use by another proxy process")

// Index is the access index. Its methods are safe for concurrent use.
type Index struct {
	path       string
	db         *bolt.DB
	ttl        time.Duration // the default TTL
	rules      []repoTTL     // TTLs by repository prefix, longest first
	flushEvery time.Duration
	log        *logrus.Entry
	now        func() time.Time
	rebuilt    bool

	mu       sync.Mutex
	entries  map[id]*entry
	lanes    []*lane                   // the entries by TTL, each lane in LRU order
	contents map[digest.Digest]content // blob and manifest content, shared across repositories
	tagRefs  map[id]int                // manifest id -> tags of its repository that point at it
	total    int64                     // bytes of content, each digest once
	dirty    []*entry                  // to be written by the next flush
	spare    []*entry                  // the previous dirty slice, reused
	deletes  []id                      // to be deleted by the next flush
	limit    int64                     // the evictor's size cap; 0 if none
	wake     chan struct{}             // the evictor's wake-up, nil if none
	closed   bool

	sharing bool     // a Syncer publishes this index's changes (outbox.go)
	outbox  []*entry // entries recorded or touched here since the last publish
	outDels []Change // removals made here since the last publish

	flushMu sync.Mutex // one flush at a time, so an older snapshot never overwrites a newer one
	quit    chan struct{}
	done    chan struct{}
	commits atomic.Int64 // write transactions, for tests
}

// content is one digest's bytes in the store, linked by refs entries.
type content struct {
	size int64
	refs int
}

// Option configures an Index.
type Option func(*Index)

// WithTTL sets how long an entry lives after its last access, unless
// WithRepoTTL gives its repository another TTL. Zero or less means entries
// never expire (a size cap may still evict them). The default is 168h.
func WithTTL(d time.Duration) Option {
	return func(ix *Index) { ix.ttl = max(d, 0) }
}

// WithFlushInterval sets how often recorded entries and touches are written; it
// bounds what a crash can lose. The default is one second.
func WithFlushInterval(d time.Duration) Option {
	return func(ix *Index) {
		if d > 0 {
			ix.flushEvery = d
		}
	}
}

// WithLogger sets the logger of the index and of its evictors.
func WithLogger(l *logrus.Entry) Option { return func(ix *Index) { ix.log = l } }

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(ix *Index) { ix.now = now } }

// Open opens the index file at path, creating it if needed. If the file is
// corrupt it is renamed to <path>.corrupt-<unix time> and a new, empty index is
// created; Rebuilt then reports true and the caller should Reconcile. If another
// process holds the file, Open fails within about a second with ErrInUse.
func Open(path string, opts ...Option) (*Index, error) {
	ix := &Index{
		path:       path,
		ttl:        DefaultTTL,
		flushEvery: DefaultFlushInterval,
		log:        logrus.NewEntry(logrus.StandardLogger()),
		now:        time.Now,
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	for _, o := range opts {
		o(ix)
	}
	ix.reset()
	if err := ix.open(); err != nil {
		return nil, err
	}
	go ix.flushLoop()
	return ix, nil
}

func (ix *Index) reset() {
	ix.entries = make(map[id]*entry)
	ix.contents = make(map[digest.Digest]content)
	ix.tagRefs = make(map[id]int)
	ix.total = 0
	ix.lanes = nil
}

// Rebuilt reports whether Open found the file corrupt and started a new index.
func (ix *Index) Rebuilt() bool { return ix.rebuilt }

// Record adds a newly stored item, or refreshes it if the index has it. A zero
// LastAccess means now; Expires is ignored (it follows from LastAccess and the
// TTL of its repository). The entry is written by the next flush.
func (ix *Index) Record(e Entry) {
	if err := e.validate(); err != nil {
		ix.log.WithError(err).WithField("entry", e.Key.String()).Warn("scheduler: not recording an invalid entry")
		return
	}
	if e.Kind == KindTag {
		e.Size = 0
	}
	if e.LastAccess.IsZero() {
		e.LastAccess = ix.now()
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	x := ix.merge(e)
	ix.share(x)
	if x.prev == &x.lane.list.root || (ix.limit > 0 && ix.total > ix.limit) {
		ix.signal() // a new oldest entry of its lane, or the size cap is exceeded
	}
}

// update points x at target (a tag that moved) and gives it size when known;
// ix.mu is held.
func (ix *Index) update(x *entry, target digest.Digest, size int64) {
	if x.target != target {
		ix.dropRefs(x)
		x.target = target
		ix.addRefs(x)
	}
	if size > 0 && size != x.size {
		ix.resize(x, size)
	}
}

// merge records e in memory and queues it for the next flush; ix.mu is held.
func (ix *Index) merge(e Entry) *entry {
	access := e.LastAccess.UnixNano()
	x, ok := ix.entries[e.id()]
	if !ok {
		x = &entry{id: e.id(), target: e.Digest, size: max(e.Size, 0), access: access}
		ix.add(x)
		x.lane.list.insert(x)
		ix.markDirty(x)
		return x
	}
	ix.update(x, e.Digest, e.Size)
	if access > x.access {
		x.lane.list.moveTo(x, access)
	}
	ix.markDirty(x)
	return x
}

// Touch records an access to k, if the index has it. It does no I/O: the new
// access time is written by the next flush.
func (ix *Index) Touch(k Key) {
	now := ix.now().UnixNano()
	ix.mu.Lock()
	if x, ok := ix.entries[k.id()]; ok && now > x.access {
		x.lane.list.moveTo(x, now)
		ix.markDirty(x)
		ix.share(x)
	}
	ix.mu.Unlock()
}

// Remove drops the entries of deleted content and writes that to disk now. Keys
// the index does not have are ignored.
func (ix *Index) Remove(keys ...Key) error {
	ix.mu.Lock()
	for _, k := range keys {
		if x, ok := ix.entries[k.id()]; ok {
			ix.forget(x)
			ix.shareRemoval(x)
		}
	}
	ix.mu.Unlock()
	if err := ix.Flush(); err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	return nil
}

// Get returns the entry of k.
func (ix *Index) Get(k Key) (Entry, bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	x, ok := ix.entries[k.id()]
	if !ok {
		return Entry{}, false
	}
	return ix.entry(x), true
}

// Len returns the number of entries of all kinds.
func (ix *Index) Len() int {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return len(ix.entries)
}

// TotalSize returns the bytes of blob and manifest content the index accounts
// for, counting each digest once however many repositories link it.
func (ix *Index) TotalSize() int64 {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.total
}

// NextExpiry returns the earliest expiry of any entry, each by the TTL of its
// repository; false if the index is empty or no entry ever expires.
func (ix *Index) NextExpiry() (time.Time, bool) { return ix.nextExpiry(nil) }

// Reconcile makes the index match the storage, typically at start: present lists
// every item found on disk. Items without an entry are added with their given
// times (zero means now); entries for items not present are dropped. Tag targets
// and sizes are taken from present. The result is written before it returns.
// Call it before the cache serves: an item stored after present was gathered
// would be dropped.
func (ix *Index) Reconcile(ctx context.Context, present []Entry) (added, dropped int, err error) {
	return ix.reconcile(ctx, present, math.MaxInt64)
}

// reconcile is Reconcile, keeping the entries not present whose last access
// is keepSince or later (Unix nanoseconds): while replicas serve, content
// stored or pulled after present was gathered is not dropped.
func (ix *Index) reconcile(ctx context.Context, present []Entry, keepSince int64) (added, dropped int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, fmt.Errorf("reconcile: %w", err)
	}
	now := ix.now()
	seen := make(map[id]struct{}, len(present))
	ix.mu.Lock()
	for _, p := range present {
		if err := p.validate(); err != nil {
			ix.log.WithError(err).WithField("entry", p.Key.String()).Warn("scheduler: reconcile: skipping an invalid entry")
			continue
		}
		seen[p.id()] = struct{}{}
		if x, ok := ix.entries[p.id()]; ok {
			ix.correct(x, p)
			continue
		}
		x := &entry{id: p.id(), target: p.Digest, size: max(p.Size, 0), access: accessOr(p.LastAccess, now)}
		ix.add(x)
		ix.share(x)
		added++
	}
	for i, x := range ix.entries {
		if _, ok := seen[i]; !ok && x.access < keepSince {
			ix.forget(x)
			ix.shareRemoval(x)
			dropped++
		}
	}
	ix.relink()
	ix.signal()
	ix.mu.Unlock()
	if err := ix.Flush(); err != nil {
		return added, dropped, fmt.Errorf("reconcile: %w", err)
	}
	return added, dropped, nil
}

func accessOr(t, now time.Time) int64 {
	if t.IsZero() {
		return now.UnixNano()
	}
	return t.UnixNano()
}

// correct updates x from what storage says about it; ix.mu is held.
func (ix *Index) correct(x *entry, p Entry) {
	if x.id.kind == KindTag && x.target != p.Digest {
		ix.dropRefs(x)
		x.target = p.Digest
		ix.addRefs(x)
		ix.markDirty(x)
		ix.share(x)
	}
	if x.id.kind != KindTag && p.Size > 0 && p.Size != x.size {
		ix.resize(x, p.Size)
		ix.markDirty(x)
		ix.share(x)
	}
}

// relink orders every lane anew and queues every unflushed new entry;
// ix.mu is held.
func (ix *Index) relink() {
	all := make([]*entry, 0, len(ix.entries))
	for _, x := range ix.entries {
		all = append(all, x)
		if x.prev == nil { // added by Reconcile, not yet listed or written
			ix.markDirty(x)
		}
	}
	ix.rebuildLanes(all)
}

// rebuildLanes lists all entries in their lanes, in access order; ix.mu is
// held or the index is not shared yet.
func (ix *Index) rebuildLanes(all []*entry) {
	by := make(map[*lane][]*entry, len(ix.lanes))
	for _, x := range all {
		by[x.lane] = append(by[x.lane], x)
	}
	for _, l := range ix.lanes {
		l.list.rebuild(by[l])
	}
}

// Close writes what is pending and closes the file.
func (ix *Index) Close() error {
	ix.mu.Lock()
	if ix.closed {
		ix.mu.Unlock()
		return nil
	}
	ix.closed = true
	ix.mu.Unlock()
	close(ix.quit)
	<-ix.done
	err := ix.Flush()
	if cerr := ix.db.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close index %s: %w", ix.path, cerr))
	}
	return err
}

// add puts a new entry in the map, gives it the lane of its repository's TTL
// and accounts for its content; ix.mu is held. The caller places it in the
// lane's list.
func (ix *Index) add(x *entry) {
	x.lane = ix.laneFor(x.id.repo)
	ix.entries[x.id] = x
	ix.addRefs(x)
}

// forget removes x from memory and queues its deletion; ix.mu is held.
func (ix *Index) forget(x *entry) {
	delete(ix.entries, x.id)
	x.lane.list.remove(x)
	ix.dropRefs(x)
	x.gone = true
	ix.deletes = append(ix.deletes, x.id)
}

func (ix *Index) addRefs(x *entry) {
	if x.id.kind == KindTag {
		ix.tagRefs[manifestOf(x)]++
		return
	}
	c := ix.contents[x.target]
	if c.refs == 0 || c.size == 0 {
		ix.total += x.size - c.size
		c.size = x.size
	}
	c.refs++
	ix.contents[x.target] = c
}

func (ix *Index) dropRefs(x *entry) {
	if x.id.kind == KindTag {
		m := manifestOf(x)
		if ix.tagRefs[m]--; ix.tagRefs[m] <= 0 {
			delete(ix.tagRefs, m)
		}
		return
	}
	c := ix.contents[x.target]
	if c.refs--; c.refs > 0 {
		ix.contents[x.target] = c
		return
	}
	ix.total -= c.size
	delete(ix.contents, x.target)
}

// resize sets the size of x and of its content: a digest has one size.
func (ix *Index) resize(x *entry, size int64) {
	x.size = size
	c := ix.contents[x.target]
	ix.total += size - c.size
	c.size = size
	ix.contents[x.target] = c
}

// key returns x's Key; ix.mu is held.
func (x *entry) key() Key {
	k := Key{Kind: x.id.kind, Repo: x.id.repo, Digest: x.target}
	if x.id.kind == KindTag {
		k.Tag = x.id.ref
	}
	return k
}

// manifestOf returns the id of the manifest revision a tag entry points at.
func manifestOf(tag *entry) id {
	return id{KindManifest, tag.id.repo, string(tag.target)}
}

func (ix *Index) markDirty(x *entry) {
	if !x.dirty {
		x.dirty = true
		ix.dirty = append(ix.dirty, x)
	}
}

// signal wakes the evictor, if any, without blocking; ix.mu is held.
func (ix *Index) signal() {
	select {
	case ix.wake <- struct{}{}:
	default:
	}
}

// watch makes the index wake c when a Record exceeds limit bytes (0: no cap) or
// brings a new oldest entry. One evictor per index: a later call replaces it.
func (ix *Index) watch(limit int64, c chan struct{}) {
	ix.mu.Lock()
	ix.limit, ix.wake = limit, c
	ix.mu.Unlock()
}

// entry returns x as an Entry; ix.mu is held.
func (ix *Index) entry(x *entry) Entry {
	e := Entry{Key: x.key(), Size: x.size, LastAccess: time.Unix(0, x.access)}
	e.Expires, _ = x.expiry()
	return e
}
