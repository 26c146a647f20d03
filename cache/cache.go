// Package cache is the pull-through cache: it answers manifest and blob reads from
// local storage and fills misses from one upstream registry, verifying every byte
// against its digest before it is committed or completely handed out.
//
// It knows nothing of HTTP serving; package proxy turns its results into responses.
package cache

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/singleflight"

	"github.com/ocimirror/proxy/cluster"
	"github.com/ocimirror/proxy/metrics"
	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
	"github.com/ocimirror/proxy/upstream"
)

// Source says where a response came from; it ends up in the request log.
type Source string

const (
	Hit   Source = "hit"   // local storage, revalidated or immutable
	Miss  Source = "miss"  // fetched from the upstream now
	Stale Source = "stale" // local copy served because the upstream failed
)

// ErrDigestMismatch reports upstream content that does not hash to its digest.
var ErrDigestMismatch = errors.New("upstream content does not match its digest")

// ErrSizeMismatch reports an upstream body longer or shorter than it declared.
var ErrSizeMismatch = errors.New("upstream body size does not match its length")

// Cache is a pull-through cache of one upstream registry.
type Cache struct {
	store *storage.Store
	up    *upstream.Client
	log   *logrus.Entry

	index        *scheduler.Index // nil: nothing recorded
	metrics      *metrics.Metrics // nil: nothing counted
	namespace    string           // prefix of local repository names; "" for the default upstream
	tagFreshness time.Duration
	redirect     bool     // blob hits may be answered with a redirect to the backend
	fresh        sync.Map // repo:tag:accept -> time.Time of the last revalidation

	flights singleflight.Group // manifest fetches and tag revalidations

	mu      sync.Mutex
	fills   map[digest.Digest]*fill
	running sync.WaitGroup // fill goroutines

	readers *Readers // clients reading stored blobs now: in use to the evictor

	coord       cluster.Coordinator // other replicas on the same store; cluster.Local alone
	leaseTTL    time.Duration
	clusterWait time.Duration
	peers       *Peers // streaming from the replica that fills; nil: off

	ctx    context.Context // lifetime of fills: they outlive the request that started them
	cancel context.CancelFunc
}

// Option configures a Cache.
type Option func(*Cache)

// WithLogger sets the logger for fills and stale answers.
func WithLogger(l *logrus.Entry) Option { return func(c *Cache) { c.log = l } }

// WithTagFreshness skips the upstream revalidation of a tag checked less than d ago.
// Zero (the default) revalidates every request, coalescing concurrent ones.
func WithTagFreshness(d time.Duration) Option { return func(c *Cache) { c.tagFreshness = d } }

// WithNamespace stores this upstream's repositories under prefix/ (its registry
// host), so equal names of different upstreams never share tags or links. The
// default upstream has none: its layout is registry:2's.
func WithNamespace(prefix string) Option { return func(c *Cache) { c.namespace = prefix } }

// WithRedirect lets blob hits be answered with a redirect to the storage
// backend (a presigned URL on s3, a signed URL on gcs, a SAS URL on azure)
// when the store's driver can redirect
// (storage.redirect.disable false). Misses are always streamed from the fill.
func WithRedirect(on bool) Option { return func(c *Cache) { c.redirect = on } }

// WithMetrics counts fills and upstream bytes in m.
func WithMetrics(m *metrics.Metrics) Option { return func(c *Cache) { c.metrics = m } }

// New returns a cache of up stored in store. Close stops fills in progress.
func New(store *storage.Store, up *upstream.Client, opts ...Option) *Cache {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cache{
		store: store,
		up:    up,
		log:   logrus.NewEntry(logrus.StandardLogger()),
		fills: make(map[digest.Digest]*fill),
		coord: cluster.Local{},

		readers: NewReaders(0),

		leaseTTL:    DefaultLeaseTTL,
		clusterWait: DefaultClusterWait,
		ctx:         ctx,
		cancel:      cancel,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Close cancels fills in progress (their clients see a cut transfer) and waits
// until they have cleaned up.
func (c *Cache) Close() {
	c.cancel()
	c.running.Wait()
}

// Upstream returns the upstream client the cache fills from.
func (c *Cache) Upstream() *upstream.Client { return c.up }

// shared runs fn once for all concurrent callers with the same key. fn runs on a
// context detached from any one caller, so a client that goes away does not fail
// the others; each caller still stops waiting when its own ctx ends.
func shared[T any](ctx context.Context, c *Cache, key string, fn func(context.Context) (T, error)) (T, error) {
	ch := c.flights.DoChan(key, func() (any, error) {
		return fn(context.WithoutCancel(ctx))
	})
	var zero T
	select {
	case r := <-ch:
		if r.Err != nil {
			return zero, r.Err
		}
		return r.Val.(T), nil
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// repository names one repository twice: as the upstream knows it, and as the
// store keeps it (under the cache's namespace, so upstreams never mix).
type repository struct{ up, local string }

// LocalName is the name a repository that clients call name is stored and
// listed under: the upstream's name (Docker Hub's "library/" added) under the
// cache's namespace ("ghcr.io/owner/app" for a further upstream).
func (c *Cache) LocalName(name string) string { return c.repository(name).local }

func (c *Cache) repository(name string) repository {
	up := c.up.RepoName(name)
	if c.namespace == "" {
		return repository{up: up, local: up}
	}
	return repository{up: up, local: c.namespace + "/" + up}
}
