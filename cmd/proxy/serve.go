package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/proxy"
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
		l.SetFormatter(&logrus.JSONFormatter{})
	} else {
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	}
	return logrus.NewEntry(l).WithFields(logrus.Fields(c.Fields))
}

// runServer wires storage, upstream, cache and front end, and serves until ctx ends.
func runServer(ctx context.Context, cfg *config.Config, log *logrus.Entry) error {
	store, err := storage.NewFilesystem(cfg.Storage.Filesystem.RootDirectory)
	if err != nil {
		return err
	}
	up, err := newUpstream(cfg.Proxy, log)
	if err != nil {
		return err
	}
	c := cache.New(store, up, cache.WithLogger(log), cache.WithTagFreshness(cfg.Proxy.TagFreshness))
	defer c.Close()
	h := proxy.New(c, proxy.WithLogger(log), proxy.WithHeaders(cfg.HTTP.Headers),
		proxy.WithAccessLog(!cfg.Log.AccessLog.Disabled))

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
	}
	if cfg.HTTP.Debug.Addr != "" {
		go serveDebug(cfg.HTTP.Debug.Addr, log)
	}
	log.WithFields(logrus.Fields{
		"addr": ln.Addr().String(), "upstream": cfg.Proxy.RemoteURL,
		"storage": cfg.Storage.Filesystem.RootDirectory, "version": version,
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

func newUpstream(p config.Proxy, log *logrus.Entry) (*upstream.Client, error) {
	opts := []upstream.Option{
		upstream.WithLogger(log),
		upstream.WithUserAgent("ocimirror-proxy/" + version),
		upstream.WithTimeouts(p.Timeouts.Connect, p.Timeouts.ResponseHeader, p.Timeouts.Stall),
		upstream.WithRetries(p.Retries, 200*time.Millisecond),
		upstream.WithMaxManifestSize(int64(p.MaxManifestSize)),
		upstream.WithInsecureSkipVerify(p.InsecureSkipVerify),
	}
	if p.Username != "" {
		opts = append(opts, upstream.WithCredentials(p.Username, p.Password))
	}
	if p.CAFile != "" {
		opts = append(opts, upstream.WithCAFile(p.CAFile))
	}
	if len(p.AuthHosts) > 0 {
		opts = append(opts, upstream.WithAuthHosts(p.AuthHosts...))
	}
	return upstream.New(p.RemoteURL, opts...)
}

// serveDebug serves pprof on the debug address.
func serveDebug(addr string, log *logrus.Entry) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.WithField("addr", addr).Info("debug server listening")
	if err := srv.ListenAndServe(); err != nil {
		log.WithError(err).Error("debug server stopped")
	}
}
