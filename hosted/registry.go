// Package hosted serves the repositories that live on this server and that users
// push to (DTR's and Harbor's "hosted" projects). It wraps distribution's own
// registry handlers, which implement the push side of the OCI distribution spec
// (monolithic and chunked uploads, cross-repository mounts, manifest validation,
// deletes, upload purging), on a storage root of its own, and adds what they
// lack: the referrers API, the OCI-Subject header, and push events for the
// mirroring engine.
//
// The caller decides which names are hosted and authorizes requests before
// handing them to a Registry; a Registry trusts its caller.
package hosted

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // the App opens it by name; storage registers the object drivers
	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/storage"
)

// DefaultMaxManifestSize is the largest manifest a push may store.
const DefaultMaxManifestSize = 4 << 20

// Registry serves hosted repositories.
type Registry struct {
	app         *handlers.App
	store       *storage.Store // a read view of the same layout: referrers, catalog
	log         *logrus.Entry
	bus         bus
	summaries   summaryCache
	maxManifest int64
	user        func(context.Context) string
}

// options collect what New is given.
type options struct {
	log           *logrus.Entry
	deleteEnabled bool
	secret        string
	purgeAge      time.Duration
	purgeInterval time.Duration
	host          string
	relativeURLs  bool
	maxManifest   int64
	user          func(context.Context) string
}

// Option configures a Registry.
type Option func(*options)

// WithLogger sets the logger for the Registry's own messages.
func WithLogger(l *logrus.Entry) Option { return func(o *options) { o.log = l } }

// WithDelete allows deleting manifests, tags and blobs (storage.delete.enabled).
func WithDelete(on bool) Option { return func(o *options) { o.deleteEnabled = on } }

// WithSecret sets the key that signs upload session state (http.secret).
// Replicas behind one load balancer need the same secret; a single process
// may leave it empty and gets a random one.
func WithSecret(s string) Option { return func(o *options) { o.secret = s } }

// WithUploadPurging removes upload sessions older than age, checking every
// interval (storage.maintenance.uploadpurging). Zero age disables purging.
func WithUploadPurging(age, interval time.Duration) Option {
	return func(o *options) { o.purgeAge, o.purgeInterval = age, interval }
}

// WithURLs sets how upload Location headers are built: an absolute base URL
// (http.host) or relative URLs (http.relativeurls).
func WithURLs(host string, relative bool) Option {
	return func(o *options) { o.host, o.relativeURLs = host, relative }
}

// WithMaxManifestSize bounds a pushed manifest (default 4 MiB).
func WithMaxManifestSize(n int64) Option { return func(o *options) { o.maxManifest = n } }

// WithUserFunc sets how events learn who made a change: the caller's
// authentication leaves the user in the request context.
func WithUserFunc(f func(context.Context) string) Option { return func(o *options) { o.user = f } }

// Backend is where a hosted root lives: a local directory (Dir), or a key
// prefix on object storage (Driver "s3", "gcs" or "azure" with Params, that
// driver's parameters with rootdirectory set to the hosted prefix).
type Backend struct {
	Dir    string
	Driver string
	Params map[string]any
	// Redirect lets blob GETs be answered with a redirect to the backend (a
	// presigned or signed URL), as distribution does unless
	// storage.redirect.disable.
	Redirect bool
}

// String names the backend for logs, never with credentials.
func (b Backend) String() string {
	if b.Driver != "" {
		bucket := b.Params["bucket"]
		if c, ok := b.Params["container"]; ok {
			bucket = c
		}
		return fmt.Sprintf("%s://%v%v", b.Driver, bucket, b.Params["rootdirectory"])
	}
	return b.Dir
}

// store opens a read view of the backend in distribution's layout (referrers,
// catalog, gc), and for a directory makes it absolute.
func (b *Backend) store(ctx context.Context) (*storage.Store, error) {
	if b.Driver != "" {
		d, err := storage.OpenDriver(ctx, b.Driver, b.Params)
		if err != nil {
			return nil, err
		}
		return storage.New(d, "")
	}
	abs, err := filepath.Abs(b.Dir)
	if err != nil {
		return nil, fmt.Errorf("hosted root %q: %w", b.Dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("hosted root: %w", err)
	}
	b.Dir = abs
	return storage.NewFilesystem(abs)
}

// New opens (creating it if needed) the hosted storage root dir and returns a
// Registry serving it. Cancelling ctx stops the upload purger; call Close to
// wait for it.
func New(ctx context.Context, dir string, opts ...Option) (*Registry, error) {
	return NewOn(ctx, Backend{Dir: dir}, opts...)
}

// NewOn is New on any backend: a local directory or an object store prefix.
func NewOn(ctx context.Context, b Backend, opts ...Option) (*Registry, error) {
	o := options{
		log:           logrus.NewEntry(logrus.StandardLogger()),
		purgeAge:      168 * time.Hour,
		purgeInterval: 24 * time.Hour,
		maxManifest:   DefaultMaxManifestSize,
	}
	for _, opt := range opts {
		opt(&o)
	}
	store, err := b.store(ctx)
	if err != nil {
		return nil, fmt.Errorf("hosted root: %w", err)
	}
	if o.secret == "" {
		o.secret = randomSecret()
	}
	app, err := newApp(ctx, appConfig(b, o))
	if err != nil {
		return nil, err
	}
	return &Registry{app: app, store: store, log: o.log, maxManifest: o.maxManifest, user: o.user}, nil
}

// appConfig is the configuration of distribution's App for a hosted root: the
// filesystem or an object driver, no auth (the caller authorizes), no proxy, no redis.
func appConfig(b Backend, o options) *configuration.Configuration {
	cfg := &configuration.Configuration{Version: "0.1"}
	purge := map[any]any{"enabled": false}
	if o.purgeAge > 0 {
		purge = map[any]any{"enabled": true, "age": o.purgeAge.String(), "interval": o.purgeInterval.String(), "dryrun": false}
	}
	cfg.Storage = configuration.Storage{
		"delete":      configuration.Parameters{"enabled": o.deleteEnabled},
		"cache":       configuration.Parameters{"blobdescriptor": "inmemory"},
		"maintenance": configuration.Parameters{"uploadpurging": purge},
		"redirect":    configuration.Parameters{"disable": !b.Redirect},
	}
	if b.Driver != "" {
		cfg.Storage[b.Driver] = configuration.Parameters(storage.DriverParams(b.Driver, b.Params))
	} else {
		cfg.Storage["filesystem"] = configuration.Parameters{"rootdirectory": b.Dir}
	}
	cfg.HTTP.Secret = o.secret
	cfg.HTTP.Host = o.host
	cfg.HTTP.RelativeURLs = o.relativeURLs
	return cfg
}

// newApp builds distribution's App, turning its panics on bad configuration
// into an error.
func newApp(ctx context.Context, cfg *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("hosted registry: %v", p)
		}
	}()
	return handlers.NewApp(ctx, cfg), nil
}

func randomSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Repositories lists the hosted repositories, sorted.
func (rg *Registry) Repositories(ctx context.Context) ([]string, error) {
	return rg.store.Repositories(ctx)
}

// Store is a read view of the hosted repositories' layout (tags, manifests),
// for the web console. Writes go through ServeHTTP only.
func (rg *Registry) Store() *storage.Store { return rg.store }

// Close stops the upload purger.
func (rg *Registry) Close() error { return rg.app.Shutdown() }

// ServeHTTP serves one registry API request for a hosted repository. The
// caller has parsed and authorized it.
func (rg *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, kind, ref := splitPath(r.URL.Path)
	switch {
	case kind == "referrers" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		rg.serveReferrers(w, r, name, ref)
	case kind == "manifests" && r.Method == http.MethodPut:
		rg.putManifest(w, r, name, ref)
	case kind == "manifests" && r.Method == http.MethodDelete:
		rg.deleteManifest(w, r, name, ref)
	default:
		rg.app.ServeHTTP(w, r)
	}
}
