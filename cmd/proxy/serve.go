package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/cluster"
	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/metrics"
	"github.com/ocimirror/proxy/proxy"
	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
	"github.com/ocimirror/proxy/upstream"
)

// serve runs the mirror until SIGINT or SIGTERM, then drains transfers in flight.
func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (default: the embedded default)")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	if fs.NArg() > 1 || (fs.NArg() == 1 && *cfgPath != "") {
		fmt.Fprintln(stderr, "proxy serve: give one configuration file, as an argument or with --config")
		return exitConfig
	}
	if fs.NArg() == 1 {
		*cfgPath = fs.Arg(0)
	}
	cfg, err := config.Load(*cfgPath, os.Environ())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	log := newLogger(cfg.Log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := runServer(ctx, cfg, log); err != nil {
		log.WithError(err).Error("proxy stopped")
		return exitFail
	}
	return exitOK
}

func newLogger(c config.Log) *logrus.Entry {
	l := logrus.StandardLogger()
	if lvl, err := logrus.ParseLevel(c.Level); err == nil {
		l.SetLevel(lvl)
	}
	if c.Formatter == "json" {
		l.SetFormatter(quietFormatter{&logrus.JSONFormatter{}})
	} else {
		l.SetFormatter(quietFormatter{&logrus.TextFormatter{FullTimestamp: true}})
	}
	return logrus.NewEntry(l).WithFields(logrus.Fields(c.Fields))
}

// runServer wires storage, upstreams, caches and front end, and serves until ctx
// ends.
func runServer(ctx context.Context, cfg *config.Config, log *logrus.Entry) error {
	ix, err := openIndex(cfg, log) // first: it holds the storage root's lock
	if err != nil {
		return err
	}
	defer ix.Close()
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	if err := reconcile(ctx, ix, store, cfg, cfg.Storage.Delete.Enabled, log); err != nil {
		return err
	}
	h, reg, stop, err := newHandler(ctx, cfg, ix, store, log)
	if err != nil {
		return err
	}
	defer stop()
	if cfg.HTTP.Debug.Addr != "" {
		go serveDebug(cfg.HTTP.Debug.Addr, reg, log)
	}
	return serveHTTP(ctx, cfg, h, log)
}

// readyDir is the local directory /readyz checks is writable: the storage root
// on the filesystem, the state directory (spool, index) with an object store.
func readyDir(cfg *config.Config) string {
	if cfg.Storage.ObjectStore() {
		return cfg.StateDir()
	}
	return cfg.Storage.Filesystem.RootDirectory
}

// newHandler builds the caches, the evictor and the HTTP front end. stop ends
// eviction and fills, in that order.
func newHandler(ctx context.Context, cfg *config.Config, ix *scheduler.Index, store *storage.Store, log *logrus.Entry) (http.Handler, *prometheus.Registry, func(), error) {
	reg, m := newRegistry(ix)
	coord, closeCoord, err := newCoordinator(cfg, m, log)
	if err != nil {
		return nil, nil, nil, err
	}
	peerCache, peerFront := peerStreaming(cfg, log)
	readers := cache.NewReaders(0) // one count for every upstream's cache
	def, byHost, err := newCaches(cfg, store, ix, m, log,
		append(peerCache, cache.WithCluster(coord, 0, 0), cache.WithReaders(readers))...)
	if err != nil {
		closeCoord()
		return nil, nil, nil, err
	}
	fr, err := newFront(ctx, cfg, byHost, coord, log)
	if err != nil {
		closeCoord()
		return nil, nil, nil, err
	}
	caches := distinct(byHost)
	registerCaches(reg, caches)
	syncer, stopSync := startIndexSync(ix, store, coord, reg, log)
	used, stopServing := startServing(coord, readers, log)
	stopEviction := startEviction(cfg, ix, store, caches, coord, syncer, used, m, log)
	stop := func() {
		stopEviction()
		stopSync()    // after the last pass: its removals are published
		stopServing() // after the drain: no client of this replica reads any more
		for _, c := range caches {
			c.Close()
		}
		fr.close()   // mirroring requeues its interrupted jobs in redis
		closeCoord() // after the fills and the jobs: they release their leases
	}
	top := metrics.NewTopRepos(0, nil)
	opts := append([]proxy.Option{proxy.WithUpstreams(byHost), proxy.WithLogger(log), proxy.WithMetrics(m),
		proxy.WithHeaders(cfg.HTTP.Headers), proxy.WithAccessLog(!cfg.Log.AccessLog.Disabled), proxy.WithTopRepos(top)}, fr.opts...)
	opts = append(opts, peerFront...)
	api := proxy.New(def, opts...)
	var h http.Handler = api
	if fr.api != nil {
		h = withAPI(api, fr.api, log)
	}
	if !cfg.UI.Disabled {
		console, err := newConsole(ctx, cfg, fr, ix, store, caches, reg, top, log)
		if err != nil {
			stop()
			return nil, nil, nil, err
		}
		h = withConsole(h, console, log)
	}
	return rootHandler(h, reg, readyDir(cfg), cfg.HTTP.Debug.Addr == ""), reg, stop, nil
}

// serveHTTP serves h until ctx ends, then lets transfers in flight finish for up
// to http.draintimeout.
func serveHTTP(ctx context.Context, cfg *config.Config, h http.Handler, log *logrus.Entry) error {
	ln, err := net.Listen(cfg.HTTP.Net, cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTP.Addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          newStdLogger(log),
		ConnContext:       proxy.ConnContext,
	}
	log.WithFields(logrus.Fields{
		"addr": ln.Addr().String(), "upstream": cfg.Proxy.RemoteURL, "upstreams": len(cfg.Upstreams),
		"storage": cfg.Storage.Describe(), "version": version,
	}).Info("registry mirror listening")
	errc := make(chan error, 1)
	go func() { errc <- listenAndServe(srv, ln, cfg.HTTP.TLS) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.WithField("drain", cfg.HTTP.DrainTimeout).Info("shutting down; letting transfers finish")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.DrainTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.WithError(err).Warn("drain timeout reached; closing remaining connections")
		_ = srv.Close()
	}
	return nil
}

func listenAndServe(srv *http.Server, ln net.Listener, tlsCfg config.TLS) error {
	var err error
	if tlsCfg.Enabled() {
		srv.TLSConfig = newTLSConfig(tlsCfg)
		err = srv.ServeTLS(ln, tlsCfg.Certificate, tlsCfg.Key)
	} else {
		err = srv.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// newCaches builds the default upstream's cache and one cache per further
// upstream, keyed by every registry host that names it.
func newCaches(cfg *config.Config, store *storage.Store, ix *scheduler.Index, m *metrics.Metrics, log *logrus.Entry, extra ...cache.Option) (*cache.Cache, map[string]*cache.Cache, error) {
	p := cfg.Proxy
	up, err := newUpstream(p, p.RemoteURL, p.Username, p.Password, p.CAFile, p.InsecureSkipVerify, p.AuthHosts, log)
	if err != nil {
		return nil, nil, err
	}
	// Only a driver that can redirect (an object store) is asked to: on the
	// filesystem it would cost every hit a stat for nothing.
	redirect := cache.WithRedirect(cfg.Storage.ObjectStore() && !cfg.Storage.Redirect.Disable)
	def := cache.New(store, up, append([]cache.Option{cache.WithLogger(log), cache.WithTagFreshness(p.TagFreshness),
		cache.WithIndex(ix), cache.WithMetrics(m), redirect}, extra...)...)
	byHost := map[string]*cache.Cache{}
	for _, h := range p.DefaultHosts() {
		byHost[h] = def
	}
	for _, u := range cfg.Upstreams {
		up, err := newUpstream(p, u.RemoteURL, u.Username, u.Password, u.CA, u.InsecureSkipVerify, u.AuthHosts, log)
		if err != nil {
			return nil, nil, fmt.Errorf("upstream %s: %w", u.Host, err)
		}
		byHost[u.Host] = cache.New(store, up, append([]cache.Option{cache.WithLogger(log.WithField("upstream", u.Host)),
			cache.WithTagFreshness(p.TagFreshness), cache.WithNamespace(u.Host), cache.WithIndex(ix), cache.WithMetrics(m), redirect},
			extra...)...)
		if u.Username != "" && !cfg.Auth.Enabled() {
			log.WithField("upstream", u.Host).Warn("this upstream has credentials and the mirror has no client auth: " +
				"anyone who reaches the mirror can pull its content")
		}
	}
	if p.Username != "" && !cfg.Auth.Enabled() {
		log.Warn("the default upstream has credentials and the mirror has no client auth: " +
			"anyone who reaches the mirror can pull its content")
	}
	return def, byHost, nil
}

// newUpstream builds an upstream client; timeouts, retries and limits are the
// proxy section's, shared by every upstream.
func newUpstream(p config.Proxy, remoteURL, user, pass, ca string, skipVerify bool, authHosts []string, log *logrus.Entry) (*upstream.Client, error) {
	opts := []upstream.Option{
		upstream.WithLogger(log),
		upstream.WithUserAgent("ocimirror-proxy/" + version),
		upstream.WithTimeouts(p.Timeouts.Connect, p.Timeouts.ResponseHeader, p.Timeouts.Stall),
		upstream.WithRetries(p.Retries, 200*time.Millisecond),
		upstream.WithMaxManifestSize(int64(p.MaxManifestSize)),
		upstream.WithInsecureSkipVerify(skipVerify),
	}
	if user != "" {
		opts = append(opts, upstream.WithCredentials(user, pass))
	}
	if ca != "" {
		opts = append(opts, upstream.WithCAFile(ca))
	}
	if len(authHosts) > 0 {
		opts = append(opts, upstream.WithAuthHosts(authHosts...))
	}
	return upstream.New(remoteURL, opts...)
}

// distinct returns each cache once (the default answers to several hosts).
func distinct(byHost map[string]*cache.Cache) []*cache.Cache {
	var out []*cache.Cache
	seen := map[*cache.Cache]bool{}
	for _, c := range byHost {
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

// newCoordinator returns the cluster coordinator: Redis when the redis section
// names a server (with an object store; config refuses it otherwise), else the
// single-node cluster.Local. close closes the Redis client.
func newCoordinator(cfg *config.Config, m *metrics.Metrics, log *logrus.Entry) (cluster.Coordinator, func(), error) {
	if !cfg.Redis.Enabled() {
		return cluster.Local{}, func() {}, nil
	}
	client, err := cluster.NewRedisClient(cfg.Redis)
	if err != nil {
		return nil, nil, err
	}
	cluster.RouteClientLogs(log.WithField("redis", cfg.Redis.Address()))
	coord := cluster.NewRedis(client, cluster.WithLogger(log.WithField("redis", cfg.Redis.Address())),
		cluster.WithStateFunc(m.ClusterDegraded))
	log.WithField("redis", cfg.Redis.Address()).Info("cluster coordination through redis: one upstream fill per digest across replicas")
	return coord, func() { _ = coord.Close() }, nil
}
