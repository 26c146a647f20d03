package main

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"

	"github.com/ocimirror/proxy/auth"
	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/hosted"
	"github.com/ocimirror/proxy/mirror"
	"github.com/ocimirror/proxy/proxy"
	"github.com/ocimirror/proxy/storage"
)

// front is what serve adds around the caches: client auth, private upstreams,
// hosted repositories and the mirroring API.
type front struct {
	opts        []proxy.Option   // for proxy.New
	api         http.Handler     // /api/v0; nil without hosted repositories
	authz       *auth.Authorizer // client auth, for the console's login
	hostedStore *storage.Store   // a read view of the hosted repositories; nil without
	close       func()
}

// newFront builds the front end's client auth, private upstreams, hosted
// repositories and mirroring engine.
func newFront(ctx context.Context, cfg *config.Config, byHost map[string]*cache.Cache, log *logrus.Entry) (*front, error) {
	authz, err := auth.New(cfg.Auth, auth.WithLogger(log.WithField("component", "auth")))
	if err != nil {
		return nil, fmt.Errorf("client auth: %w", err)
	}
	opts := []proxy.Option{proxy.WithAuth(authz)}
	if cfg.Auth.Enabled() {
		for _, u := range cfg.Upstreams {
			if !u.IsPublic() {
				opts = append(opts, proxy.WithPrivate(byHost[u.Host]))
			}
		}
	}
	f := &front{opts: opts, authz: authz, close: func() {}}
	if len(cfg.Hosted.Namespaces) == 0 {
		return f, nil
	}
	reg, err := newHosted(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	f.opts = append(f.opts, proxy.WithHosted(cfg.Hosted.IsHosted, reg))
	api, stopMirroring, err := newMirroring(cfg, reg, authz, log)
	if err != nil {
		_ = reg.Close()
		return nil, err
	}
	f.api = api
	f.hostedStore = reg.Store()
	f.close = func() { stopMirroring(); _ = reg.Close() }
	return f, nil
}

// newHosted opens the hosted repositories.
func newHosted(ctx context.Context, cfg *config.Config, log *logrus.Entry) (*hosted.Registry, error) {
	root := hostedBackend(cfg)
	purge := cfg.Storage.Maintenance.UploadPurging
	age, interval := 168*time.Hour, 24*time.Hour
	if purge.Age > 0 {
		age = purge.Age
	}
	if purge.Interval > 0 {
		interval = purge.Interval
	}
	if purge.Enabled != nil && !*purge.Enabled {
		age = 0 // off
	}
	reg, err := hosted.NewOn(ctx, root,
		hosted.WithLogger(log.WithField("component", "hosted")),
		hosted.WithDelete(cfg.Storage.Delete.Enabled),
		hosted.WithSecret(cfg.HTTP.Secret),
		hosted.WithUploadPurging(age, interval),
		hosted.WithURLs(cfg.HTTP.Host, cfg.HTTP.RelativeURLs),
		hosted.WithMaxManifestSize(int64(cfg.Proxy.MaxManifestSize)),
		hosted.WithUserFunc(auth.UserFrom),
	)
	if err != nil {
		return nil, err
	}
	log.WithFields(logrus.Fields{"namespaces": cfg.Hosted.Namespaces, "root": root.String()}).Info("hosted repositories enabled")
	if !cfg.Auth.Enabled() {
		log.Warn("hosted repositories need client auth for pushes: set auth.htpasswd or auth.token; until then pushes are refused")
	}
	return reg, nil
}

// newMirroring starts the mirroring engine of the hosted repositories: its
// database (mirror.db in the hosted root), job workers and poll schedule, fed
// with the hosted registry's push events. It returns the /api/v0 handler and a
// func that stops the engine and waits for running jobs to wind down.
func newMirroring(cfg *config.Config, reg *hosted.Registry, authz *auth.Authorizer, log *logrus.Entry) (http.Handler, func(), error) {
	path := mirrorDBPath(cfg)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	mlog := log.WithField("component", "mirror")
	opts := []mirror.JobsOption{mirror.WithJobLogger(mlog)}
	if cfg.Mirror.Workers > 0 {
		opts = append(opts, mirror.WithJobWorkers(cfg.Mirror.Workers))
	}
	jobs, err := mirror.OpenJobs(db, opts...)
	if err == nil {
		var eng *mirror.Engine
		interval := cmp.Or(cfg.Mirror.PollInterval, mirror.DefaultPollInterval)
		eng, err = mirror.NewEngine(db, jobs, mirror.NewCopier(mirror.WithLogger(mlog)),
			mirror.Local{Host: "hosted.local", Transport: reg.Transport(), IsHosted: cfg.Hosted.IsHosted},
			mirror.WithEngineLogger(mlog), mirror.WithPollInterval(interval))
		if err == nil {
			stop := runMirroring(jobs, eng, reg, db)
			return mirror.NewAPI(eng, authz), stop, nil
		}
	}
	_ = db.Close()
	return nil, nil, err
}

// runMirroring runs the job workers and the engine until the returned func
// is called.
func runMirroring(jobs *mirror.Jobs, eng *mirror.Engine, reg *hosted.Registry, db *bolt.DB) func() {
	events, unsubscribe := reg.Subscribe(1024)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); jobs.Run(ctx) }()
	go func() { defer wg.Done(); eng.Run(ctx, events) }()
	return func() {
		cancel()
		wg.Wait()
		unsubscribe()
		_ = db.Close()
	}
}

// withAPI serves /api/v0/ with api, with a line per request in the log, and
// everything else with registry.
func withAPI(registry, api http.Handler, log *logrus.Entry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/v0/") {
			registry.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		api.ServeHTTP(sw, r)
		log.WithFields(logrus.Fields{"method": r.Method, "path": r.URL.Path, "status": sw.status,
			"duration": time.Since(start).Round(time.Microsecond).String(), "remote": r.RemoteAddr}).Info("api request")
	})
}

// statusWriter remembers the status of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}
