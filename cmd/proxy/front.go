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

	"github.com/ocimirror/proxy/auth"
	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/cluster"
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
func newFront(ctx context.Context, cfg *config.Config, byHost map[string]*cache.Cache, coord cluster.Coordinator, log *logrus.Entry) (*front, error) {
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
	api, stopMirroring, err := newMirroring(cfg, reg, authz, coord, log)
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
// store (mirror.db in the hosted root, or Redis in a cluster), job workers
// and poll schedule, fed with the hosted registry's push events. It returns
// the /api/v0 handler and a func that stops the engine and waits for running
// jobs to wind down.
func newMirroring(cfg *config.Config, reg *hosted.Registry, authz *auth.Authorizer, coord cluster.Coordinator, log *logrus.Entry) (http.Handler, func(), error) {
	mlog := log.WithField("component", "mirror")
	opts := []mirror.JobsOption{mirror.WithJobLogger(mlog)}
	if cfg.Mirror.Workers > 0 {
		opts = append(opts, mirror.WithJobWorkers(cfg.Mirror.Workers))
	}
	jobs, closeStore, err := openMirrorJobs(cfg, coord, opts)
	if err != nil {
		return nil, nil, err
	}
	interval := cmp.Or(cfg.Mirror.PollInterval, mirror.DefaultPollInterval)
	eng := mirror.NewEngine(jobs, mirror.NewCopier(mirror.WithLogger(mlog)),
		mirror.Local{Host: "hosted.local", Transport: reg.Transport(), IsHosted: cfg.Hosted.IsHosted},
		mirror.WithEngineLogger(mlog), mirror.WithPollInterval(interval))
	if jobs.Store().Shared() {
		mlog.Info("mirroring policies and jobs in redis: shared by the replicas, each job run by one")
	}
	return mirror.NewAPI(eng, authz), runMirroring(cfg, jobs, eng, reg, closeStore, mlog), nil
}

// runMirroring runs the job workers and the engine (and, in a cluster, the
// import of this replica's local policies) until the returned func is
// called.
func runMirroring(cfg *config.Config, jobs *mirror.Jobs, eng *mirror.Engine, reg *hosted.Registry, closeStore func(), log *logrus.Entry) func() {
	events, unsubscribe := reg.Subscribe(1024)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); jobs.Run(ctx) }()
	go func() { defer wg.Done(); eng.Run(ctx, events) }()
	go func() {
		defer wg.Done()
		if jobs.Store().Shared() {
			importLocalPolicies(ctx, mirrorDBPath(cfg), jobs.Store(), log)
		}
	}()
	return func() {
		cancel()
		wg.Wait()
		unsubscribe()
		closeStore()
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
