package mirror

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"reflect"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"
)

// Copier copies images between registries. One Copier serves any number of
// concurrent copies: they share its HTTP connections and its rate-limit budget
// per registry host, which is why a program should have one.
type Copier struct {
	jobs     int
	log      *logrus.Entry
	progress func(Progress)
	base     http.RoundTripper // WithTransport; nil: one per TLS setting
	backoff  remote.Backoff
	budget   *budget
	every    time.Duration // progress report interval

	mu         sync.Mutex
	transports map[string]http.RoundTripper // tlsKey -> transport
	pullers    map[pullerKey]*cachedPuller
}

// Option configures a Copier.
type Option func(*Copier)

// WithJobs sets how many blobs one copy transfers at once (default 4). An index's
// platforms are copied concurrently too, so at most n blob downloads are in
// flight per copy (go-containerregistry's pull limiter) while uploads wait on them.
func WithJobs(n int) Option {
	return func(c *Copier) {
		if n > 0 {
			c.jobs = n
		}
	}
}

// WithLogger sets where the Copier logs rate-limit pauses and referrers it
// could not copy. Credentials are never logged.
func WithLogger(l *logrus.Entry) Option { return func(c *Copier) { c.log = l } }

// WithProgress sets a function called with snapshots of each copy in flight,
// a few times a second while bytes move and once at its end (Done). It is called
// from the copy's own goroutine and should return quickly.
func WithProgress(f func(Progress)) Option { return func(c *Copier) { c.progress = f } }

// WithTransport sets the HTTP transport under every request (tests: a fault
// injector). The Endpoints' CA and SkipTLSVerify are then the transport's business.
func WithTransport(rt http.RoundTripper) Option { return func(c *Copier) { c.base = rt } }

// WithRetries sets how often a request that failed with a temporary error (a
// 5xx, 429, a reset connection) is tried: attempts in all, waiting first, then
// three times as long each time (default 3 attempts, 1s). Cancellation is never
// retried.
func WithRetries(attempts int, first time.Duration) Option {
	return func(c *Copier) {
		if attempts > 0 {
			c.backoff = remote.Backoff{Duration: first, Factor: 3, Jitter: 0.1, Steps: attempts}
		}
	}
}

// WithMaxWait sets the longest a request waits for a registry's rate limit to
// reset (default 2 minutes). A request that would wait longer fails at once with
// a *RateLimitError.
func WithMaxWait(d time.Duration) Option { return func(c *Copier) { c.budget.maxWait = d } }

// NewCopier returns a Copier.
func NewCopier(opts ...Option) *Copier {
	c := &Copier{
		jobs:       4,
		log:        logrus.NewEntry(discardLogger()),
		backoff:    remote.Backoff{Duration: time.Second, Factor: 3, Jitter: 0.1, Steps: 3},
		budget:     newBudget(2*time.Minute, nil),
		every:      200 * time.Millisecond,
		transports: map[string]http.RoundTripper{},
		pullers:    map[pullerKey]*cachedPuller{},
	}
	for _, o := range opts {
		o(c)
	}
	c.log = c.log.WithField("component", "mirror")
	c.budget.log = c.log
	return c
}

func discardLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// transport returns the HTTP transport for e's TLS settings, under the budget.
func (c *Copier) transport(e Endpoint) (http.RoundTripper, error) {
	if e.Transport != nil {
		return e.Transport, nil
	}
	if c.base != nil {
		return c.budget.transport(c.base), nil
	}
	key := e.tlsKey()
	c.mu.Lock()
	defer c.mu.Unlock()
	if rt, ok := c.transports[key]; ok {
		return rt, nil
	}
	pool, err := e.certPool()
	if err != nil {
		return nil, err
	}
	t := remote.DefaultTransport.(*http.Transport).Clone()
	if pool != nil || e.SkipTLSVerify {
		t.TLSClientConfig = &tls.Config{RootCAs: pool, InsecureSkipVerify: e.SkipTLSVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // the endpoint asked for it
	}
	rt := c.budget.transport(t)
	c.transports[key] = rt
	return rt, nil
}

// options returns the go-containerregistry options to reach e through rt.
func (c *Copier) options(ctx context.Context, e Endpoint, rt http.RoundTripper) []remote.Option {
	return []remote.Option{
		remote.WithAuth(e.auth()),
		remote.WithTransport(rt),
		remote.WithContext(ctx),
		remote.WithJobs(c.jobs),
		remote.WithRetryBackoff(c.backoff),
		remote.WithRetryPredicate(retryable(ctx)),
		remote.WithUserAgent("ocimirror-proxy"),
	}
}

// retryable is the retry predicate of requests made for ctx: temporary
// registry errors (5xx, 429) and broken connections are retried; cancellation
// and an exhausted rate-limit budget are not.
func retryable(ctx context.Context) func(error) bool {
	return func(err error) bool {
		if err == nil || ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return false
		}
		var rl *RateLimitError
		if errors.As(err, &rl) {
			return false
		}
		var tmp interface{ Temporary() bool }
		if errors.As(err, &tmp) && tmp.Temporary() {
			return true
		}
		return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE) ||
			errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
	}
}

// pullerKey identifies an endpoint for the puller cache: Tags and Head on the
// same endpoint reuse one token exchange instead of one each.
type pullerKey struct {
	repo, tls string
	insecure  bool
	authType  reflect.Type // with the address: pointers to zero-size values may share one
	auth      uintptr
}

type cachedPuller struct {
	p    *remote.Puller
	used time.Time
}

// pullerTTL is how long an unused cached puller is kept.
const pullerTTL = 5 * time.Minute

// puller returns a puller for e, cached when e's authenticator is a pointer (a
// pointer's identity says the credentials are the same; the cache keeps the
// pointer alive, so its address is not reused meanwhile).
func (c *Copier) puller(e Endpoint) (*remote.Puller, error) {
	rt, err := c.transport(e)
	if err != nil {
		return nil, err
	}
	newPuller := func() (*remote.Puller, error) {
		// Background: the puller outlives this call; each request carries its ctx.
		return remote.NewPuller(c.options(context.Background(), e, rt)...)
	}
	v := reflect.ValueOf(e.auth())
	if v.Kind() != reflect.Pointer {
		return newPuller()
	}
	key := pullerKey{repo: e.Repo.Name(), tls: e.tlsKey(), insecure: e.Insecure, authType: v.Type(), auth: v.Pointer()}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, cp := range c.pullers {
		if now.Sub(cp.used) > pullerTTL {
			delete(c.pullers, k)
		}
	}
	if cp, ok := c.pullers[key]; ok {
		cp.used = now
		return cp.p, nil
	}
	p, err := newPuller()
	if err != nil {
		return nil, err
	}
	c.pullers[key] = &cachedPuller{p: p, used: now}
	return p, nil
}
