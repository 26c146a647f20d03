package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/sirupsen/logrus"
	"golang.org/x/term"

	"github.com/ocimirror/proxy/internal/units"
	"github.com/ocimirror/proxy/mirror"
)

// dockerHub is the registry `proxy mirror` copies from without --from.
const dockerHub = "registry-1.docker.io"

// mirrorArgs are the parsed arguments of `proxy mirror`.
type mirrorArgs struct {
	from      string // source registry host
	fromHTTP  bool   // --from http://...: plain HTTP to the source
	dest      string // destination registry host
	prefix    string // repository path prefix at the destination, "" for none
	insecure  bool
	platforms []v1.Platform
	dryRun    bool
	jobs      int
	images    []mirrorImage
}

// mirrorImage is one IMAGE argument.
type mirrorImage struct {
	arg  string // as given
	path string // repository on the source, library/ added for Docker Hub
	ref  string // tag or digest; "" means every tag
}

// mirrorCommand runs `proxy mirror [--from REGISTRY] -d DEST[/prefix] IMAGE...`:
// it copies images (every tag, or the one given) from a registry to DEST, with
// every platform, the index digests kept and the referrers copied along.
func mirrorCommand(args []string, stdout, stderr io.Writer) int {
	a, code := parseMirrorArgs(args, stderr)
	if a == nil {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return runMirror(ctx, a, authn.DefaultKeychain, stdout, stderr)
}

func mirrorUsage(w io.Writer) {
	fmt.Fprint(w, `usage: proxy mirror [--from REGISTRY] -d DEST[/prefix] [flags] IMAGE...

Copies each IMAGE (namespace/name, with :tag or @digest for one, without for
every tag) from REGISTRY (default Docker Hub, where a single name gets library/)
to DEST/prefix/namespace/name, with every platform, index digests kept, and the
referrers (signatures, SBOMs) of every manifest. Credentials come from docker's
config.json and credential helpers ($DOCKER_CONFIG).

flags:
`)
}

// platformList is the --platform flag: repeatable, and comma lists.
type platformList []v1.Platform

func (p *platformList) String() string {
	s := make([]string, len(*p))
	for i, pl := range *p {
		s[i] = pl.String()
	}
	return strings.Join(s, ",")
}

func (p *platformList) Set(v string) error {
	for f := range strings.SplitSeq(v, ",") {
		f = strings.TrimSpace(f)
		pl, err := v1.ParsePlatform(f)
		if err != nil || pl.OS == "" || pl.Architecture == "" {
			return fmt.Errorf("platform %q: want os/arch[/variant], e.g. linux/arm64", f)
		}
		*p = append(*p, *pl)
	}
	return nil
}

// parseMirrorArgs parses the arguments; on failure it says why on stderr and
// returns nil with the exit code.
func parseMirrorArgs(args []string, stderr io.Writer) (*mirrorArgs, int) {
	fs := flag.NewFlagSet("mirror", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { mirrorUsage(stderr); fs.PrintDefaults() }
	a := &mirrorArgs{}
	var dest string
	var platforms platformList
	fs.StringVar(&a.from, "from", dockerHub, "source `registry` host")
	fs.StringVar(&dest, "d", "", "destination `registry[/prefix]`")
	fs.StringVar(&dest, "dest", "", "same as -d")
	fs.BoolVar(&a.insecure, "insecure", false, "allow plain HTTP to both registries")
	fs.Var(&platforms, "platform", "copy only `os/arch[/variant]` from indexes (repeatable, or a comma list)")
	fs.BoolVar(&a.dryRun, "dry-run", false, "print what would be copied where; copy nothing")
	fs.IntVar(&a.jobs, "j", 4, "blobs transferred at once per image")
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK
			}
			return nil, exitConfig
		}
		if fs.NArg() == 0 {
			break
		}
		rest, args = append(rest, fs.Arg(0)), fs.Args()[1:]
	}
	bad := func(format string, v ...any) (*mirrorArgs, int) {
		fmt.Fprintf(stderr, "proxy mirror: "+format+"\n", v...)
		return nil, exitConfig
	}
	if a.jobs < 1 {
		return bad("-j must be at least 1, not %d", a.jobs)
	}
	if len(platforms) > 0 {
		a.platforms = platforms
	}
	from, fromHTTP := cutScheme(a.from)
	a.from, a.fromHTTP = from, fromHTTP
	if isDockerHub(a.from) {
		a.from = dockerHub
	}
	if _, err := name.NewRegistry(a.from); err != nil || a.from == "" || strings.Contains(a.from, "/") {
		return bad("--from %q is not a registry host", a.from)
	}
	if dest == "" {
		return bad("give the destination with -d REGISTRY[/prefix]")
	}
	dest, destHTTP := cutScheme(dest)
	a.insecure = a.insecure || destHTTP
	a.dest, a.prefix, _ = strings.Cut(strings.TrimSuffix(dest, "/"), "/")
	if !looksLikeHost(a.dest) {
		return bad("-d %q must start with a registry host (registry.example.com[/prefix], localhost:5000)", dest)
	}
	if _, err := name.NewRepository(a.dest+"/"+join(a.prefix, "x"), name.StrictValidation); err != nil {
		return bad("-d %q: %v", dest, err)
	}
	if len(rest) == 0 {
		return bad("give at least one IMAGE (namespace/name[:tag|@digest])")
	}
	for _, arg := range rest {
		img, err := parseMirrorImage(arg, a.from)
		if err != nil {
			return bad("%v", err)
		}
		a.images = append(a.images, img)
	}
	return a, exitOK
}

// parseMirrorImage reads namespace/name[:tag|@digest] on the registry from.
func parseMirrorImage(arg, from string) (mirrorImage, error) {
	img := mirrorImage{arg: arg}
	path := arg
	if p, d, ok := strings.Cut(arg, "@"); ok {
		path, img.ref = p, d
	} else if i := strings.LastIndex(arg, ":"); i > strings.LastIndex(arg, "/") {
		path, img.ref = arg[:i], arg[i+1:]
		if img.ref == "" {
			return img, fmt.Errorf("image %q: empty tag", arg)
		}
	}
	if first, _, ok := strings.Cut(path, "/"); ok && looksLikeHost(first) {
		return img, fmt.Errorf("image %q names a registry: IMAGE is a repository on --from (%s); give another registry with --from", arg, from)
	}
	if from == dockerHub && path != "" && !strings.Contains(path, "/") {
		path = "library/" + path
	}
	img.path = path
	repo, err := name.NewRepository(from+"/"+path, name.StrictValidation)
	if err != nil {
		return img, fmt.Errorf("image %q: %v", arg, err)
	}
	switch {
	case strings.Contains(img.ref, ":"):
		_, err = name.NewDigest(repo.Name() + "@" + img.ref)
	case img.ref != "":
		_, err = name.NewTag(repo.Name()+":"+img.ref, name.StrictValidation)
	}
	if err != nil {
		return img, fmt.Errorf("image %q: %v", arg, err)
	}
	return img, nil
}

// cutScheme strips https:// or http:// (which asks for plain HTTP).
func cutScheme(s string) (string, bool) {
	if r, ok := strings.CutPrefix(s, "http://"); ok {
		return r, true
	}
	return strings.TrimPrefix(s, "https://"), false
}

// looksLikeHost tells whether a first path component is a registry host, by
// docker's rule: it has a dot or a port, or is localhost.
func looksLikeHost(s string) bool {
	return strings.ContainsAny(s, ".:") || s == "localhost"
}

func isDockerHub(host string) bool {
	switch host {
	case "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return true
	}
	return false
}

func join(prefix, path string) string {
	if prefix == "" {
		return path
	}
	return prefix + "/" + path
}

// endpointFor is repo on host with credentials from kc. Docker Hub's
// credentials are filed under index.docker.io in config.json, whatever host
// serves its API.
func endpointFor(host, repo string, insecure bool, kc authn.Keychain) (mirror.Endpoint, error) {
	opts := []name.Option{name.StrictValidation}
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.NewRepository(host+"/"+repo, opts...)
	if err != nil {
		return mirror.Endpoint{}, err
	}
	var resource authn.Resource = r
	if isDockerHub(host) {
		if resource, err = name.NewRepository(name.DefaultRegistry + "/" + repo); err != nil {
			return mirror.Endpoint{}, err
		}
	}
	auth, err := kc.Resolve(resource)
	if err != nil {
		return mirror.Endpoint{}, fmt.Errorf("credentials for %s: %w", host, err)
	}
	return mirror.Endpoint{Repo: r, Auth: auth, Insecure: insecure}, nil
}

// mirrorRun is the state of one `proxy mirror`: its output and tallies.
type mirrorRun struct {
	a      *mirrorArgs
	out    io.Writer
	errw   io.Writer
	tty    bool
	c      *mirror.Copier
	start  time.Time
	mu     sync.Mutex // out, between progress lines and result lines
	failed []string

	images, tags, copied, upToDate, skippedPlatform int
	blobs, skipped, mounted, referrers              int
	bytes                                           int64
	plan                                            map[string]int // dry run: new, changed, up to date
}

func runMirror(ctx context.Context, a *mirrorArgs, kc authn.Keychain, stdout, stderr io.Writer) int {
	m := &mirrorRun{a: a, out: stdout, errw: stderr, tty: isTerminal(stdout), start: time.Now(), plan: map[string]int{}}
	log := logrus.New()
	log.SetOutput(stderr)
	log.SetLevel(logrus.WarnLevel)
	opts := []mirror.Option{mirror.WithJobs(a.jobs), mirror.WithLogger(logrus.NewEntry(log))}
	if m.tty && !a.dryRun {
		opts = append(opts, mirror.WithProgress(m.progress))
	}
	m.c = mirror.NewCopier(opts...)
	for _, img := range a.images {
		if ctx.Err() != nil {
			break
		}
		m.image(ctx, img, kc)
	}
	if ctx.Err() != nil {
		m.fail("interrupted", ctx.Err())
	}
	m.summary()
	if len(m.failed) > 0 {
		fmt.Fprintf(stderr, "proxy mirror: failed: %s\n", strings.Join(m.failed, ", "))
		return exitFail
	}
	return exitOK
}

// image copies (or plans) one IMAGE argument.
func (m *mirrorRun) image(ctx context.Context, img mirrorImage, kc authn.Keychain) {
	m.images++
	src, err := endpointFor(m.a.from, img.path, m.a.insecure || m.a.fromHTTP, kc)
	if err != nil {
		m.fail(img.arg, err)
		return
	}
	dst, err := endpointFor(m.a.dest, join(m.a.prefix, img.path), m.a.insecure, kc)
	if err != nil {
		m.fail(img.arg, err)
		return
	}
	refs := []string{img.ref}
	if img.ref == "" {
		tags, err := m.c.Tags(ctx, src)
		if err != nil {
			m.fail(img.arg, err)
			return
		}
		// sha256-<hex> tags are the referrers tag schema: referrers travel
		// with their subjects, and the destination keeps its own such index.
		refs = slices.DeleteFunc(tags, mirror.IsReferrersTag)
		slices.Sort(refs)
		if len(refs) == 0 {
			m.line("%s: no tags\n", src)
		}
	}
	for _, ref := range refs {
		if ctx.Err() != nil {
			return
		}
		m.tags++
		if m.a.dryRun {
			m.dryRun(ctx, src, dst, ref, img.path)
			continue
		}
		m.copy(ctx, src, dst, ref, img.path, img.ref != "")
	}
}

// refName renders repo with a tag or a digest.
func refName(e mirror.Endpoint, ref string) string {
	if strings.Contains(ref, ":") {
		return e.Repo.Name() + "@" + ref
	}
	return e.Repo.Name() + ":" + ref
}

// copy copies one tag or digest. A tag without the platforms asked for is
// skipped when every tag is copied, and a failure when it was named.
func (m *mirrorRun) copy(ctx context.Context, src, dst mirror.Endpoint, ref, path string, named bool) {
	start := time.Now()
	res, err := m.c.Copy(ctx, src, ref, dst, "", m.a.platforms)
	m.blobs += res.Blobs
	m.skipped += res.Skipped
	m.mounted += res.Mounted
	m.referrers += res.Referrers
	m.bytes += res.Bytes
	srcName := refName(src, ref)
	switch {
	case errors.Is(err, mirror.ErrNoPlatform) && !named:
		m.skippedPlatform++
		m.line("skipped %s: %v\n", srcName, innermost(err))
	case err != nil:
		m.fail(path+sep(ref)+ref, err)
	default:
		m.copied++
		verb := "copied"
		if res.UpToDate() {
			verb, m.upToDate = "up to date", m.upToDate+1
		}
		dstName := refName(dst, ref)
		if strings.Contains(ref, ":") && res.Digest.String() != ref {
			dstName = refName(dst, res.Digest.String())
		}
		m.line("%s %s -> %s %s: %d manifests, %d blobs (%s), %d skipped, %d mounted, %d referrers, %s\n",
			verb, srcName, dstName, short(res.Digest), res.Manifests, res.Blobs, units.Bytes(res.Bytes), res.Skipped,
			res.Mounted, res.Referrers, time.Since(start).Round(time.Millisecond))
	}
}

// innermost returns the innermost error of err's chain that wraps another: for
// an ErrNoPlatform, the sentence that names the platforms.
func innermost(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil || errors.Unwrap(next) == nil {
			return err
		}
		err = next
	}
}

func sep(ref string) string {
	if strings.Contains(ref, ":") {
		return "@"
	}
	return ":"
}

func short(h v1.Hash) string {
	if len(h.Hex) < 12 {
		return h.String()
	}
	return h.Algorithm + ":" + h.Hex[:12]
}

// dryRun prints what a copy of ref would do: HEADs at both ends, no copy.
func (m *mirrorRun) dryRun(ctx context.Context, src, dst mirror.Endpoint, ref, path string) {
	sd, err := m.c.Head(ctx, src, ref)
	if err != nil {
		m.fail(path+sep(ref)+ref, err)
		return
	}
	dref := ref
	if strings.Contains(ref, ":") {
		dref = sd.Digest.String()
	}
	filtered := m.a.platforms != nil && sd.MediaType.IsIndex()
	kind, note := "new", ""
	dd, err := m.c.Head(ctx, dst, dref)
	switch {
	case isNotFoundErr(err):
	case err != nil:
		m.fail(path+sep(ref)+ref, fmt.Errorf("destination: %w", err))
		return
	case dd.Digest == sd.Digest && !filtered:
		kind = "up to date"
	default: // a filtered index gets a digest of its own: only the copy tells
		kind, note = "changed", ", replaces "+short(dd.Digest)
	}
	if filtered {
		note += ", filtered to " + (*platformList)(&m.a.platforms).String()
	}
	m.plan[kind]++
	m.line("would copy %s %s -> %s (%s%s)\n", refName(src, ref), short(sd.Digest), refName(dst, dref), kind, note)
}

// isNotFoundErr tells whether err is a registry's 404 (a missing tag or repository).
func isNotFoundErr(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// progress draws the copy in flight on its line (terminals only).
func (m *mirrorRun) progress(p mirror.Progress) {
	if p.Done {
		return // the result line replaces it
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintf(m.out, "\r\x1b[K%s  %s  %d blobs, %d skipped, %d mounted", p.Src, units.Bytes(p.Bytes), p.Blobs, p.Skipped, p.Mounted)
}

// line prints a result line, over the progress line on a terminal.
func (m *mirrorRun) line(format string, v ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tty {
		fmt.Fprint(m.out, "\r\x1b[K")
	}
	fmt.Fprintf(m.out, format, v...)
}

func (m *mirrorRun) fail(what string, err error) {
	m.failed = append(m.failed, what)
	m.mu.Lock()
	if m.tty {
		fmt.Fprint(m.out, "\r\x1b[K")
	}
	m.mu.Unlock()
	fmt.Fprintf(m.errw, "proxy mirror: %s: %v\n", what, err)
}

func (m *mirrorRun) summary() {
	if m.a.dryRun {
		m.line("dry run: %d images, %d tags: %d new, %d changed, %d up to date; nothing copied\n",
			m.images, m.tags, m.plan["new"], m.plan["changed"], m.plan["up to date"])
		return
	}
	failed := ""
	if len(m.failed) > 0 {
		failed = fmt.Sprintf(", %d failed", len(m.failed))
	}
	plat := ""
	if m.skippedPlatform > 0 {
		plat = fmt.Sprintf(", %d without the platforms", m.skippedPlatform)
	}
	m.line("mirrored %d images, %d tags (%d copied, %d up to date%s%s): %d blobs copied (%s), %d skipped, %d mounted, %d referrers, in %s\n",
		m.images, m.tags, m.copied-m.upToDate, m.upToDate, plat, failed, m.blobs, units.Bytes(m.bytes), m.skipped, m.mounted,
		m.referrers, time.Since(m.start).Round(time.Millisecond))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
