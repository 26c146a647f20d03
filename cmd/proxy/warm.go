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

	"github.com/distribution/reference"

	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/internal/units"
	"github.com/ocimirror/proxy/scheduler"
)

// warm fetches images, every platform of an index with its manifests, configs
// and layers, into the cache ahead of use, then exits. Without --server it
// works on the storage root itself, through the same caches serve uses (so the
// index records everything and pins apply); a running proxy owns the root, so
// it then refuses, and --server URL pulls through that proxy's registry API
// instead. Exit codes: 0 all warmed, 1 an image failed (named on stderr), 2 a
// usage or configuration error.
func warm(args []string, stdout, stderr io.Writer, environ []string) int {
	wa, ok := parseWarmArgs(args, stdout, stderr)
	if !ok {
		return exitConfig
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	src, closeSrc, code := openWarmSource(ctx, wa, stderr, environ)
	if src == nil {
		return code
	}
	defer closeSrc()
	for _, img := range wa.images {
		if err := src.check(img.name); err != nil {
			fmt.Fprintf(stderr, "proxy warm: %s: %v\n", img.arg, err)
			return exitConfig
		}
	}
	w := newWarmer(src, wa.progressTo)
	failed := w.run(ctx, wa.images, stderr)
	w.summary(stdout, len(wa.images), failed)
	if len(failed) > 0 {
		return exitFail
	}
	return exitOK
}

// warmArgs are warm's parsed arguments.
type warmArgs struct {
	cfgPath    string
	server     string      // --server URL; empty: work on the storage root
	images     []warmImage // in the order given
	progressTo io.Writer   // where per-platform lines go; nil: only the summary
}

// parseWarmArgs reads [--progress] (--server URL | --config CONFIG | CONFIG)
// IMAGE..., flags anywhere. Without --server or --config the first argument is
// the configuration file.
func parseWarmArgs(args []string, stdout, stderr io.Writer) (warmArgs, bool) {
	var wa warmArgs
	fs := flag.NewFlagSet("warm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&wa.cfgPath, "config", "", "configuration file of the proxy whose storage root is warmed")
	fs.StringVar(&wa.server, "server", "", "pull through the running proxy at this URL instead (http://host:port)")
	progress := fs.Bool("progress", isTerminal(stdout), "print a line per image and platform (default: when stdout is a terminal)")
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return wa, false
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	if wa.server != "" && wa.cfgPath != "" {
		fmt.Fprintln(stderr, "proxy warm: give --server or a configuration file, not both")
		return wa, false
	}
	if wa.server == "" && wa.cfgPath == "" && len(pos) > 0 {
		wa.cfgPath, pos = pos[0], pos[1:]
	}
	if len(pos) == 0 {
		fmt.Fprintln(stderr, "usage: proxy warm CONFIG IMAGE... | proxy warm --server URL IMAGE...")
		return wa, false
	}
	for _, s := range pos {
		img, err := parseWarmImage(s)
		if err != nil {
			fmt.Fprintf(stderr, "proxy warm: %v\n", err)
			return wa, false
		}
		wa.images = append(wa.images, img)
	}
	if *progress {
		wa.progressTo = stdout
	}
	return wa, true
}

// warmImage is one IMAGE argument: the repository as a client of the mirror
// names it (a first component with a dot, a port or localhost is an upstream's
// host, as in serve's routing) and a tag or digest.
type warmImage struct {
	arg  string
	name string
	ref  string
}

// parseWarmImage reads repo:tag, repo@digest or host/repo:tag; no tag means
// latest, as with docker pull.
func parseWarmImage(s string) (warmImage, error) {
	r, err := reference.Parse(s)
	if err != nil {
		return warmImage{}, fmt.Errorf("image %q: %w", s, err)
	}
	named, ok := r.(reference.Named)
	if !ok {
		return warmImage{}, fmt.Errorf("image %q: no repository name", s)
	}
	img := warmImage{arg: s, name: named.Name(), ref: "latest"}
	if t, ok := r.(reference.Tagged); ok {
		img.ref = t.Tag()
	}
	if d, ok := r.(reference.Digested); ok {
		img.ref = d.Digest().String()
	}
	return img, nil
}

// openWarmSource opens the source of wa: a running server, or the storage root
// of the configuration. On failure it has said why and returns the exit code.
func openWarmSource(ctx context.Context, wa warmArgs, stderr io.Writer, environ []string) (warmSource, func(), int) {
	if wa.server != "" {
		src, err := newServerSource(wa.server)
		if err != nil {
			fmt.Fprintln(stderr, "proxy warm:", err)
			return nil, nil, exitConfig
		}
		return src, func() {}, exitOK
	}
	cfg, err := config.Load(wa.cfgPath, environ)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, nil, exitConfig
	}
	src, err := openLocalSource(ctx, cfg, gcLogger(cfg.Log, stderr))
	switch {
	case errors.Is(err, scheduler.ErrInUse):
		fmt.Fprintf(stderr, "proxy warm: storage %s is in use by a running proxy; "+
			"warm through it instead: proxy warm --server http://HOST:PORT IMAGE...\n", cfg.Storage.Describe())
		return nil, nil, exitFail
	case err != nil:
		fmt.Fprintln(stderr, "proxy warm:", err)
		return nil, nil, exitFail
	}
	return src, func() {
		if err := src.close(); err != nil {
			fmt.Fprintln(stderr, "proxy warm:", err)
		}
	}, exitOK
}

// summary prints the one line warm always prints: what the run fetched, and
// which images failed.
func (w *warmer) summary(out io.Writer, images int, failed []string) {
	t := w.totals()
	s := fmt.Sprintf("%s, %s, %s", plural(t.manifests, "manifest"), plural(t.blobs, "blob"), units.Bytes(t.bytes))
	if w.src.knowsUpstream() {
		s += fmt.Sprintf(" (%s from upstream)", units.Bytes(t.fromUpstream))
	}
	took := time.Since(w.start).Round(time.Millisecond)
	if len(failed) == 0 {
		fmt.Fprintf(out, "warmed %s: %s in %s\n", plural(images, "image"), s, took)
		return
	}
	fmt.Fprintf(out, "warmed %d of %d images: %s in %s; failed: %s\n",
		images-len(failed), images, s, took, strings.Join(failed, ", "))
}
