package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
)

// Deleter deletes stored items for an Evictor. Deleting what is already gone is
// success: return nil, or an error matching fs.ErrNotExist.
type Deleter interface {
	DeleteTag(ctx context.Context, repo, tag string) error
	DeleteManifest(ctx context.Context, repo string, dgst digest.Digest) error // the repository's revision link
	UnlinkBlob(ctx context.Context, repo string, dgst digest.Digest) error     // the repository's layer link
	DeleteBlob(ctx context.Context, dgst digest.Digest) error                  // the content itself
	// InUse reports a blob a fill or a reader is using right now; the pass leaves
	// it alone. It is called without any lock of the index held.
	InUse(dgst digest.Digest) bool
}

// Stats counts what an eviction pass did (or, from Plan, would do), for metrics,
// logs and the gc command.
type Stats struct {
	Tags, Manifests, Links int   // entries removed by kind; Links are blob links
	Blobs                  int   // contents deleted, blob or manifest, once per digest
	Bytes                  int64 // bytes of content deleted
	ManifestBlobs          int   // of Blobs, manifests (content a manifest entry linked)
	ManifestBytes          int64 // of Bytes, the manifests'
	Skipped                int   // in use, or pulled while the pass ran: left for later
	Failed                 int   // deletions that failed: their entries stay for the next pass
	Pinned                 int   // due for eviction but pinned: kept
}

// Evictor deletes expired entries and, above a size cap, the least recently used.
type Evictor struct {
	ix       *Index
	d        Deleter
	maxSize  int64
	lowWater float64
	pinned   func(Key) bool // nil: nothing is pinned
	log      *logrus.Entry
	retry    time.Duration // first wait after a pass that had to leave work undone
	maxWait  time.Duration // longest sleep between passes
	wake     chan struct{}
	passMu   sync.Mutex // one pass at a time

	pinWarned bool // the cap is not met because of pinned content, and the log said so; used by Run only

	lease    Leaser        // nil: this evictor is alone (single node)
	leaseTTL time.Duration // life of the evict lease without renewal

	refresh func(ctx context.Context) error // before each pass of Run; nil: none
	onPass  func(Stats)                     // after each pass of Run; nil: none
}

// EvictLease is the cluster-wide lease whose holder is the one replica that
// runs eviction passes.
const EvictLease = "evict"

// DefaultEvictLeaseTTL is the life of the evict lease without renewal: how
// long the cluster goes without eviction after its evicting replica died, and
// how often the others try to take the lease.
const DefaultEvictLeaseTTL = 10 * time.Second

// Leaser grants cluster-wide leases (cluster.Holder: cluster.Redis,
// cluster.Local). The scheduler only needs this one call of the cluster.
type Leaser interface {
	// Hold tries once to take key for ttl, renewed in the background until
	// release; lost is closed if the lease is lost meanwhile. An error means
	// the cluster cannot tell (coordination unavailable).
	Hold(ctx context.Context, key string, ttl time.Duration) (held bool, lost <-chan struct{}, release func(), err error)
}

// EvictOption configures an Evictor.
type EvictOption func(*Evictor)

// WithMaxSize caps the content size in bytes; zero (the default) means no cap.
func WithMaxSize(bytes int64) EvictOption {
	return func(ev *Evictor) { ev.maxSize = max(bytes, 0) }
}

// WithLowWater sets the fraction of the cap a pass evicts down to once the cap is
// exceeded, so that passes do not follow every new blob. The default is 0.9;
// values outside (0, 1] keep it.
func WithLowWater(fraction float64) EvictOption {
	return func(ev *Evictor) {
		if fraction > 0 && fraction <= 1 {
			ev.lowWater = fraction
		}
	}
}

// WithPinned makes the evictor keep every entry for which pinned reports true,
// whether expired or over the cap; Pinned builds one from patterns. A tag that
// stays keeps the manifest it points at anyway. pinned is called with the index
// locked: it must be quick and must not call the index.
func WithPinned(pinned func(Key) bool) EvictOption {
	return func(ev *Evictor) { ev.pinned = pinned }
}

// WithClusterLease makes Run evict only while this replica holds the
// cluster's evict lease, so one replica at a time runs passes for replicas
// sharing one store: Run takes the lease and keeps it (renewed) while it runs;
// the others skip their passes and try to take it every ttl (0: the default),
// taking over when the holder stopped or died. When the coordination service
// cannot be reached, Run evicts alone, as a single node (degraded).
// EvictOnce and Plan (the gc command) do not take the lease.
func WithClusterLease(l Leaser, ttl time.Duration) EvictOption {
	return func(ev *Evictor) {
		ev.lease = l
		if ttl > 0 {
			ev.leaseTTL = ttl
		}
	}
}

// WithRefresh makes Run call refresh before each pass, so that the pass plans
// with the latest state: Syncer.Pull merges the other replicas' accesses
// published since the last exchange. An error is logged and the pass runs
// with what the index has.
func WithRefresh(refresh func(ctx context.Context) error) EvictOption {
	return func(ev *Evictor) { ev.refresh = refresh }
}

// WithPassReport makes Run call report with the Stats of each pass it ran
// (for metrics). It is called from Run's goroutine.
func WithPassReport(report func(Stats)) EvictOption {
	return func(ev *Evictor) { ev.onPass = report }
}

// NewEvictor returns an evictor of ix that deletes through d. It logs with the
// index's logger. An index has one evictor: a second replaces the first's
// wake-ups.
func NewEvictor(ix *Index, d Deleter, opts ...EvictOption) *Evictor {
	ev := &Evictor{
		ix: ix, d: d,
		lowWater: 0.9,
		log:      ix.log,
		retry:    time.Second,
		maxWait:  time.Minute,
		wake:     make(chan struct{}, 1),
		leaseTTL: DefaultEvictLeaseTTL,
	}
	for _, o := range opts {
		o(ev)
	}
	ix.watch(ev.maxSize, ev.wake)
	return ev
}

// Run evicts until ctx ends: a pass now, then one whenever the next entry
// expires, a Record exceeds the cap or brings an older entry, or a minute
// passed. After a pass that had to leave due work (content in use, a failed
// deletion) it retries after a second, backing off to a minute. Stop Run
// before closing the index. With WithClusterLease, passes run only while this
// replica holds the evict lease; Run releases it when it returns.
func (ev *Evictor) Run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var l leadership
	defer l.resign()
	backoff := ev.retry
	for ctx.Err() == nil {
		if !ev.lead(ctx, &l) {
			// Another replica evicts: try to take over later.
			t.Reset(ev.leaseTTL)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			continue
		}
		now := ev.runPass(ctx)
		wait, stuck := ev.nextWait(now)
		wake := ev.wake
		if stuck {
			// Do not spin on work the pass had to leave (content in use, a
			// deletion failing): retry later and later, ignoring wake-ups.
			wait, backoff = backoff, min(2*backoff, ev.maxWait)
			wake = nil
		} else {
			backoff = ev.retry
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-wake:
		case <-l.lost:
		}
	}
}

// runPass is one pass of Run: refreshed from the cluster, reported. It
// returns the time the pass ran at.
func (ev *Evictor) runPass(ctx context.Context) time.Time {
	if ev.refresh != nil {
		if err := ev.refresh(ctx); err != nil && ctx.Err() == nil {
			ev.log.WithError(err).Debug("scheduler: index not refreshed from the cluster before the pass")
		}
	}
	now := ev.ix.now()
	st, err := ev.EvictOnce(ctx, now)
	ev.report(st, err)
	if ev.onPass != nil {
		ev.onPass(st)
	}
	ev.warnPinnedOverCap(st)
	return now
}

// leadership is Run's hold on the evict lease.
type leadership struct {
	release func() // nil: not held
	lost    <-chan struct{}
}

func (l *leadership) resign() {
	if l.release != nil {
		l.release()
		l.release, l.lost = nil, nil
	}
}

// lead reports whether this replica may run a pass now: always alone; in a
// cluster while it holds the evict lease (taking it if free), or when the
// coordination service cannot be reached.
func (ev *Evictor) lead(ctx context.Context, l *leadership) bool {
	if ev.lease == nil {
		return true
	}
	if l.release != nil {
		select {
		case <-l.lost:
			ev.log.Warn("scheduler: evict lease lost; this replica stops evicting")
			l.resign()
		default:
			return true
		}
	}
	held, lost, release, err := ev.lease.Hold(ctx, EvictLease, ev.leaseTTL)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			ev.log.WithError(err).Debug("scheduler: cluster coordination unavailable; evicting alone")
		}
		return ctx.Err() == nil
	case !held:
		ev.log.Debug("scheduler: another replica holds the evict lease; pass skipped")
		return false
	}
	ev.log.Info("scheduler: this replica holds the evict lease and evicts for the cluster")
	l.release, l.lost = release, lost
	return true
}

// nextWait returns how long to sleep after a pass at now until the next entry
// expires, or true if the pass left due work undone (skipped or failed).
func (ev *Evictor) nextWait(now time.Time) (time.Duration, bool) {
	if ev.maxSize > 0 && ev.ix.TotalSize() > ev.maxSize {
		return 0, true
	}
	next, ok := ev.ix.nextExpiry(ev.pinned) // a pinned entry never expires
	switch {
	case !ok:
		return ev.maxWait, false
	case !next.After(now):
		return 0, true
	}
	return min(max(next.Sub(ev.ix.now()), 0), ev.maxWait), false
}

func (ev *Evictor) report(st Stats, err error) {
	l := ev.log.WithFields(logrus.Fields{
		"tags": st.Tags, "manifests": st.Manifests, "links": st.Links, "blobs": st.Blobs,
		"bytes": st.Bytes, "skipped": st.Skipped, "failed": st.Failed, "pinned": st.Pinned,
	})
	switch {
	case st.Tags+st.Manifests+st.Links+st.Blobs+st.Failed > 0:
		l.Info("scheduler: eviction pass")
	case st.Skipped > 0:
		l.Debug("scheduler: eviction pass left items in use")
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		ev.log.WithError(err).Warn("scheduler: eviction pass incomplete")
	}
}

// warnPinnedOverCap says once, until the cap is met again, that pinned content
// alone keeps the cache above its cap: no pass can help, only a larger cap or
// fewer pins.
func (ev *Evictor) warnPinnedOverCap(st Stats) {
	over := ev.maxSize > 0 && ev.ix.TotalSize() > ev.maxSize
	switch {
	case !over:
		ev.pinWarned = false
	case st.Pinned > 0 && st.Skipped+st.Failed == 0 && !ev.pinWarned:
		ev.pinWarned = true
		ev.log.WithFields(logrus.Fields{"bytes": ev.ix.TotalSize(), "maxsize": ev.maxSize}).
			Warn("scheduler: pinned content keeps the cache above its size cap")
	}
}

// EvictOnce runs one pass at now: expired entries, then the size cap. Links go
// first (tags, manifests, blob links), then content no remaining entry links. A
// failed deletion is logged and the pass goes on; the error returned sums up the
// failures, or is ctx's if it ended the pass early.
func (ev *Evictor) EvictOnce(ctx context.Context, now time.Time) (Stats, error) {
	ev.passMu.Lock()
	defer ev.passMu.Unlock()
	p := &pass{ev: ev, pending: make(map[digest.Digest][]victim)}
	victims, planned := ev.plan(ctx, now)
	p.stats.Skipped, p.stats.Pinned = planned.Skipped, planned.Pinned
	var busy map[digest.Digest]bool
	for i, v := range victims {
		if ctx.Err() != nil {
			break
		}
		if i%inUseBatch == 0 {
			busy = inUseOf(ctx, ev.d, candidates(victims[i:min(i+inUseBatch, len(victims))], nil))
		}
		p.unlink(ctx, v, busy[v.Digest])
	}
	for i, d := range p.order {
		if ctx.Err() != nil {
			break
		}
		if i%inUseBatch == 0 {
			busy = inUseOf(ctx, ev.d, p.order[i:min(i+inUseBatch, len(p.order))])
		}
		p.deleteContent(ctx, d, p.pending[d], busy[d])
	}
	var errs []error
	if p.stats.Failed > 0 {
		errs = append(errs, fmt.Errorf("evict: %d deletions failed, the first: %w", p.stats.Failed, p.errs[0]))
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, fmt.Errorf("evict: %w", err))
	}
	if err := ev.ix.Flush(); err != nil { // removals are written even if ctx ended
		errs = append(errs, fmt.Errorf("evict: %w", err))
	}
	return p.stats, errors.Join(errs...)
}

// Plan reports what EvictOnce at now would delete and free, deleting nothing:
// a dry run. Content in use now counts as Skipped, as in a pass.
func (ev *Evictor) Plan(now time.Time) Stats {
	ev.passMu.Lock()
	defer ev.passMu.Unlock()
	_, st := ev.plan(context.Background(), now)
	return st
}

// plan asks the index for victims, again without those whose content is in use,
// so that the size cap is met with others. The Stats are the planner's. Each
// round asks the deleter about all its new candidates at once.
func (ev *Evictor) plan(ctx context.Context, now time.Time) (vs []victim, st Stats) {
	low := int64(math.Round(ev.lowWater * float64(ev.maxSize)))
	skip := make(map[digest.Digest]bool)
	for range 4 { // in-use content is rare; a few rounds settle it
		vs, st = ev.ix.plan(now, ev.maxSize, low, skip, ev.pinned)
		busy := inUseOf(ctx, ev.d, candidates(vs, skip))
		for d := range busy {
			skip[d] = true
		}
		if len(busy) == 0 {
			break
		}
	}
	return vs, st
}

// pass is the state of one EvictOnce.
type pass struct {
	ev      *Evictor
	stats   Stats
	errs    []error
	pending map[digest.Digest][]victim // unlinked entries whose content may go
	order   []digest.Digest            // pending's keys in deletion order
}

// unlink deletes v's link unless its content is inUse. A tag's entry goes at
// once; a manifest's or blob's waits for the decision on its content.
func (p *pass) unlink(ctx context.Context, v victim, inUse bool) {
	if !p.ev.ix.current(v) || (v.Kind != KindTag && inUse) {
		p.stats.Skipped++
		return
	}
	if err := p.ev.deleteLink(ctx, v.Key); err != nil {
		p.fail(v.Key, err)
		return
	}
	if v.Kind == KindTag {
		p.drop(v)
		return
	}
	if _, ok := p.pending[v.Digest]; !ok {
		p.order = append(p.order, v.Digest)
	}
	p.pending[v.Digest] = append(p.pending[v.Digest], v)
}

// deleteContent deletes the content d if no entry but the unlinked ones in vs
// links it and it is not inUse, then drops those entries. If the deletion
// fails they stay, so the next pass tries again.
func (p *pass) deleteContent(ctx context.Context, d digest.Digest, vs []victim, inUse bool) {
	if p.ev.ix.liveRefs(d, vs) == 0 {
		if inUse {
			p.stats.Skipped += len(vs)
			return
		}
		if err := notFoundOK(p.ev.d.DeleteBlob(ctx, d)); err != nil {
			p.fail(Key{Kind: vs[0].Kind, Repo: vs[0].Repo, Digest: d}, fmt.Errorf("delete content: %w", err))
			return
		}
		p.stats.freed(vs[0].Size, slices.ContainsFunc(vs, func(v victim) bool { return v.Kind == KindManifest }))
	}
	for _, v := range vs {
		p.drop(v)
	}
}

// drop removes v's entry and counts it.
func (p *pass) drop(v victim) {
	if !p.ev.ix.drop(v) {
		p.stats.Skipped++
		return
	}
	p.stats.count(v.Kind)
}

func (p *pass) fail(k Key, err error) {
	p.ev.log.WithError(err).WithField("entry", k.String()).Warn("scheduler: eviction failed; will retry")
	p.stats.Failed++
	p.errs = append(p.errs, fmt.Errorf("%s: %w", k, err))
}

func (ev *Evictor) deleteLink(ctx context.Context, k Key) error {
	var err error
	switch k.Kind {
	case KindTag:
		err = ev.d.DeleteTag(ctx, k.Repo, k.Tag)
	case KindManifest:
		err = ev.d.DeleteManifest(ctx, k.Repo, k.Digest)
	default:
		err = ev.d.UnlinkBlob(ctx, k.Repo, k.Digest)
	}
	return notFoundOK(err)
}

func notFoundOK(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
