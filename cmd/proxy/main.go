// Command proxy is an OCI pull-through caching registry proxy (a registry mirror).
//
//	proxy serve [CONFIG]          run the mirror (embedded default config without CONFIG)
//	proxy gc [--dry-run] [CONFIG] run one eviction pass by hand and print what it freed
//	proxy mirror [--from REGISTRY] -d DEST[/prefix] IMAGE...
//	                              copy images, every platform and their referrers, to DEST
//	proxy warm CONFIG IMAGE...    fetch images, all platforms, into the cache ahead of use
//	proxy warm --server URL IMAGE... the same through a running proxy
//	proxy version                 print the version
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes: 2 is a usage or configuration error, 1 a failure at run time.
const (
	exitOK     = 0
	exitFail   = 1
	exitConfig = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitConfig
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "gc":
		return gc(args[1:], stdout, stderr, os.Environ())
	case "mirror":
		return mirrorCommand(args[1:], stdout, stderr)
	case "warm":
		return warm(args[1:], stdout, stderr, os.Environ())
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, versionString())
		return exitOK
	case "help", "-h", "--help":
		usage(stdout)
		return exitOK
	}
	fmt.Fprintf(stderr, "proxy: unknown command %q\n", args[0])
	usage(stderr)
	return exitConfig
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: proxy <command> [arguments]

commands:
  serve [CONFIG]     run the registry mirror; without CONFIG, the embedded default
                     (listen :5000, storage ./data, upstream Docker Hub)
                     --config CONFIG works too; REGISTRY_* variables override keys
  gc [--dry-run] [CONFIG]
                     run one eviction pass now; print what it freed (--dry-run: would free)
  mirror [--from REGISTRY] -d DEST[/prefix] [--platform os/arch] [--dry-run] [--insecure] [-j N] IMAGE...
                     copy images (namespace/name[:tag|@digest]; without a tag, every
                     tag) from REGISTRY (default Docker Hub) to DEST/prefix/namespace/name:
                     every platform, index digests kept, signatures and SBOMs along
  warm [--progress] CONFIG IMAGE...
                     fetch images (repo:tag, repo@digest, host/repo:tag), every platform,
                     into the cache of CONFIG's storage root, then exit; not while a
                     proxy serve owns the root
  warm [--progress] --server URL IMAGE...
                     the same through the running proxy at URL
  version            print the version
`)
}

func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
	}
	return "proxy " + v
}
