package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/hosted"
	"github.com/ocimirror/proxy/internal/units"
	"github.com/ocimirror/proxy/scheduler"
)

// gc runs one eviction pass by hand, with the configured TTL, size cap and pins,
// and prints what it freed, or with --dry-run what it would free. It refuses a
// root that a running proxy owns: that one evicts on its own.
func gc(args []string, stdout, stderr io.Writer, environ []string) int {
	dryRun, cfgPath, ok := parseGCArgs(args, stderr)
	if !ok {
		return exitConfig
	}
	cfg, err := config.Load(cfgPath, environ)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	if !dryRun && !cfg.Storage.Delete.Enabled {
		fmt.Fprintln(stderr, "proxy gc: storage.delete.enabled is false, so nothing may be deleted: "+
			"set it to true, or use --dry-run to see what a pass would free")
		return exitConfig
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := runGC(ctx, cfg, dryRun, gcLogger(cfg.Log, stderr))
	if errors.Is(err, scheduler.ErrInUse) {
		fmt.Fprintf(stderr, "proxy gc: storage %s is in use by a running proxy, which evicts on its own; stop it to run gc by hand\n",
			cfg.Storage.Describe())
		return exitFail
	}
	if rep != nil {
		rep.print(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "proxy gc:", err)
		return exitFail
	}
	return exitOK
}

// parseGCArgs reads [--dry-run] [--config CONFIG | CONFIG], flags before or
// after the file.
func parseGCArgs(args []string, stderr io.Writer) (dryRun bool, cfgPath string, ok bool) {
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&dryRun, "dry-run", false, "print what a pass would free; delete nothing")
	fs.StringVar(&cfgPath, "config", "", "configuration file (default: the embedded default)")
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			return false, "", false
		}
		if fs.NArg() == 0 {
			break
		}
		files, args = append(files, fs.Arg(0)), fs.Args()[1:]
	}
	if len(files) > 1 || (len(files) == 1 && cfgPath != "") {
		fmt.Fprintln(stderr, "proxy gc: give one configuration file, as an argument or with --config")
		return false, "", false
	}
	if len(files) == 1 {
		cfgPath = files[0]
	}
	return dryRun, cfgPath, true
}

// gcLogger logs to w like serve's logger, without touching logrus's standard
// logger.
func gcLogger(c config.Log, w io.Writer) *logrus.Entry {
	l := logrus.New()
	l.SetOutput(w)
	if lvl, err := logrus.ParseLevel(c.Level); err == nil {
		l.SetLevel(lvl)
	}
	if c.Formatter == "json" {
		l.SetFormatter(&logrus.JSONFormatter{})
	}
	return logrus.NewEntry(l).WithFields(logrus.Fields(c.Fields))
}

// evictorOptions are the eviction settings of a validated cfg: the size cap and
// the pins. serve's evictor and gc's use them alike.
func evictorOptions(cfg *config.Config) []scheduler.EvictOption {
	opts := []scheduler.EvictOption{scheduler.WithMaxSize(int64(cfg.Proxy.MaxSize))}
	var pins []scheduler.Pin
	for _, p := range cfg.Proxy.Pin {
		if repo, tag, err := config.ParsePin(p); err == nil { // Load validated them
			pins = append(pins, scheduler.Pin{Repo: repo, Tag: tag})
		}
	}
	if len(pins) > 0 {
		opts = append(opts, scheduler.WithPinned(scheduler.Pinned(pins...)))
	}
	return opts
}

// gcReport is what a gc run did, or would do.
type gcReport struct {
	dryRun        bool
	cfg           *config.Config
	st            scheduler.Stats
	before, after int64 // content bytes
	hosted        *hosted.GCReport
	clusterLeft   bool // cached content left to the cluster's evicting replica
}

// hostedGrace spares unreferenced hosted blobs younger than this: a push in
// progress uploads its layers before the manifest that references them.
const hostedGrace = time.Hour

// runGC opens the index as serve does (taking the root's lock first, then
// reconciling it with the disk) and runs one pass, or plans one. A dry run
// changes nothing but what reconciling corrects: entries of content already
// gone from the disk, and entries for content that had none.
func runGC(ctx context.Context, cfg *config.Config, dryRun bool, log *logrus.Entry) (rep *gcReport, err error) {
	ix, err := openIndex(cfg, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := ix.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close index: %w", cerr))
		}
	}()
	store, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// A replica of a cluster leaves deleting cached content to the running
	// replicas: only the one holding the evict lease evicts, and it sees what
	// every replica fills and serves, which a pass from here would not.
	clustered := cfg.Redis.Enabled()
	if err := reconcile(ctx, ix, store, cfg, cfg.Storage.Delete.Enabled && !dryRun && !clustered, log); err != nil {
		return nil, err
	}
	// No cache runs here, so no fill or reader uses any blob: Caches stays empty.
	ev := scheduler.NewEvictor(ix, cache.Deleter{Store: store}, evictorOptions(cfg)...)
	rep = &gcReport{dryRun: dryRun, cfg: cfg, before: ix.TotalSize()}
	now := time.Now()
	switch {
	case dryRun:
		rep.st = ev.Plan(now)
		rep.after = rep.before - rep.st.Bytes
	case clustered:
		rep.clusterLeft = true
		rep.after = rep.before
	default:
		rep.st, err = ev.EvictOnce(ctx, now)
		rep.after = ix.TotalSize()
		if err != nil {
			return rep, err
		}
	}
	if len(cfg.Hosted.Namespaces) > 0 {
		h, err := hosted.CollectOn(ctx, hostedBackend(cfg), hostedGrace, dryRun, now)
		rep.hosted = &h
		if err != nil {
			return rep, fmt.Errorf("hosted repositories: %w", err)
		}
	}
	return rep, nil
}

// print writes the report: entries removed by kind, content freed (the
// manifests' and the other blobs'), the cache size before and after, and what
// stayed though due.
func (r *gcReport) print(w io.Writer) {
	p := r.cfg.Proxy
	limit := "no size cap"
	if p.MaxSize > 0 {
		limit = "maxsize " + units.Bytes(int64(p.MaxSize))
	}
	fmt.Fprintf(w, "storage %s (ttl %s, %s, %d pin patterns)\n", r.cfg.Storage.Describe(), ttlSummary(r.cfg), limit, len(p.Pin))
	if r.clusterLeft {
		fmt.Fprintln(w, "cached content: not evicted by gc in a cluster (redis is configured); the replica that holds")
		fmt.Fprintln(w, "  the cluster's evict lease evicts it, seeing what every replica fills and serves")
	} else {
		r.printCache(w)
	}
	r.printHosted(w)
}

// printCache writes the cache pass: entries removed by kind, bytes freed, and
// what stayed though due.
func (r *gcReport) printCache(w io.Writer) {
	st := r.st
	if r.dryRun {
		fmt.Fprintln(w, "would free (dry run, nothing deleted):")
	} else {
		fmt.Fprintln(w, "freed:")
	}
	line := func(kind string, n any, size string) {
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  %-10s %8v %10s", kind, n, size), " "))
	}
	line("tags", st.Tags, "")
	line("manifests", st.Manifests, units.Bytes(st.ManifestBytes))
	line("blob links", st.Links, "")
	line("blobs", st.Blobs-st.ManifestBlobs, units.Bytes(st.Bytes-st.ManifestBytes))
	line("total", "", units.Bytes(st.Bytes))
	fmt.Fprintf(w, "cache size: %s -> %s\n", units.Bytes(r.before), units.Bytes(r.after))
	var kept []string
	for _, k := range []struct {
		n    int
		what string
	}{{st.Pinned, "pinned"}, {st.Skipped, "in use or pulled meanwhile"}, {st.Failed, "failed to delete (see the log)"}} {
		if k.n > 0 {
			kept = append(kept, fmt.Sprintf("%d %s", k.n, k.what))
		}
	}
	if len(kept) > 0 {
		fmt.Fprintf(w, "kept though due: %s\n", strings.Join(kept, ", "))
	}
}

// printHosted writes the hosted repositories' collection, if one ran.
func (r *gcReport) printHosted(w io.Writer) {
	if h := r.hosted; h != nil {
		verb := "freed"
		if r.dryRun {
			verb = "would free"
		}
		fmt.Fprintf(w, "hosted repositories %s: %d manifests, %d blobs; %s %d unreferenced blobs, %s",
			hostedBackend(r.cfg), h.Manifests, h.Blobs, verb, h.Swept, units.Bytes(h.Bytes))
		if h.Young > 0 {
			fmt.Fprintf(w, " (%d younger than %s spared)", h.Young, hostedGrace)
		}
		fmt.Fprintln(w)
	}
}

// ttlSummary is proxy.ttl, then every upstream whose TTL differs from it:
// "168h0m0s; ghcr.io 10h0m0s".
func ttlSummary(cfg *config.Config) string {
	s := cfg.Proxy.TTL.String()
	var other []string
	for _, u := range cfg.Upstreams {
		if u.TTL != cfg.Proxy.TTL {
			other = append(other, u.Host+" "+u.TTL.String())
		}
	}
	if len(other) > 0 {
		s += "; " + strings.Join(other, ", ")
	}
	return s
}
