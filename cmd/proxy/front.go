package main

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/auth"
	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/hosted"
	"github.com/ocimirror/proxy/proxy"
)

// frontOptions returns the front end's client auth, private upstreams and
// hosted repositories, and a func that closes what it opened.
func frontOptions(ctx context.Context, cfg *config.Config, byHost map[string]*cache.Cache, log *logrus.Entry) ([]proxy.Option, func(), error) {
	authz, err := auth.New(cfg.Auth, auth.WithLogger(log.WithField("component", "auth")))
	if err != nil {
		return nil, nil, fmt.Errorf("client auth: %w", err)
	}
	opts := []proxy.Option{proxy.WithAuth(authz)}
	if cfg.Auth.Enabled() {
		for _, u := range cfg.Upstreams {
			if !u.IsPublic() {
				opts = append(opts, proxy.WithPrivate(byHost[u.Host]))
			}
		}
	}
	hostedOpts, closeHosted, err := newHosted(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	return append(opts, hostedOpts...), closeHosted, nil
}

// newHosted opens the hosted repositories when hosted.namespaces lists any, and
// returns the front end's option for them and a func that closes them.
func newHosted(ctx context.Context, cfg *config.Config, log *logrus.Entry) ([]proxy.Option, func(), error) {
	if len(cfg.Hosted.Namespaces) == 0 {
		return nil, func() {}, nil
	}
	root := cfg.Hosted.Root(cfg.Storage.Filesystem.RootDirectory)
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
	reg, err := hosted.New(ctx, root,
		hosted.WithLogger(log.WithField("component", "hosted")),
		hosted.WithDelete(cfg.Storage.Delete.Enabled),
		hosted.WithSecret(cfg.HTTP.Secret),
		hosted.WithUploadPurging(age, interval),
		hosted.WithURLs(cfg.HTTP.Host, cfg.HTTP.RelativeURLs),
		hosted.WithMaxManifestSize(int64(cfg.Proxy.MaxManifestSize)),
		hosted.WithUserFunc(auth.UserFrom),
	)
	if err != nil {
		return nil, nil, err
	}
	log.WithFields(logrus.Fields{"namespaces": cfg.Hosted.Namespaces, "root": root}).Info("hosted repositories enabled")
	if !cfg.Auth.Enabled() {
		log.Warn("hosted repositories need client auth for pushes: set auth.htpasswd or auth.token; until then pushes are refused")
	}
	return []proxy.Option{proxy.WithHosted(cfg.Hosted.IsHosted, reg)}, func() { _ = reg.Close() }, nil
}
