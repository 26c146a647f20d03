//go:build e2e

package e2e

// Shared by the client and conformance tests: the proxy binary built once, two
// upstreams (distribution's registry in-process) seeded with images the test
// builds, a mirror of both, and daemons that live in a temp dir and die with
// the test.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ocimirror/proxy/internal/syncbuf"
	"github.com/ocimirror/proxy/internal/testregistry"
)

// TestMain removes the shared builds when the package's tests are done.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	dirOnce   sync.Once
	binDir    string
	binDirErr error

	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// buildDir returns a temp dir for binaries the tests build, shared by all tests
// of the package (TestMain removes it).
func buildDir(t *testing.T) string {
	t.Helper()
	dirOnce.Do(func() { binDir, binDirErr = os.MkdirTemp("", "e2e-bin-") })
	if binDirErr != nil {
		t.Fatal(binDirErr)
	}
	return binDir
}

// buildProxy builds cmd/proxy once per test binary and returns its path.
func buildProxy(t *testing.T) string {
	t.Helper()
	dir := buildDir(t)
	buildOnce.Do(func() {
		binPath = filepath.Join(dir, "proxy")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/proxy").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ../cmd/proxy: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// requireTool returns the path of a client binary, and skips the test when it
// is not installed (a dev box without it). .ci/test installs every client and
// sets E2E_REQUIRE_CLIENTS=1, which turns a missing one into a failure: CI
// never skips.
func requireTool(t *testing.T, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, "%s not on PATH (install: %s)", name, install)
	}
	return p
}

// requireRoot fails the test unless it runs as root: containerd and dockerd
// need it (CI runs as root).
func requireRoot(t *testing.T, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("%s runs as root (with all its state in a temp dir); run the e2e tests as root", what)
	}
}

// missing skips the test for a missing client, or fails it under
// E2E_REQUIRE_CLIENTS=1.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("E2E_REQUIRE_CLIENTS") == "1" {
		t.Fatalf(format+" and E2E_REQUIRE_CLIENTS=1", args...)
	}
	t.Skipf(format+"; .ci/test installs it", args...)
}

// deadAddr returns a loopback address nothing listens on. Client configs name
// it as the upstream registry's own address, so a pull the mirror cannot
// serve fails at once instead of reaching the network.
func deadAddr(t *testing.T) string {
	t.Helper()
	return freeAddr(t)
}

// run runs a command with a time limit and returns its combined output,
// failing the test with both on error.
func run(t *testing.T, timeout time.Duration, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(timeout, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// runErr is run that returns the error instead of failing.
func runErr(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	return runIn("", timeout, env, name, args...)
}

// runIn is runErr in the working directory dir ("" for the test's).
func runIn(dir string, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %s: %w", timeout, err)
	}
	return string(out), err
}

// waitUntil polls ready until it succeeds or timeout passes.
func waitUntil(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// daemon is a long-running client process (containerd, dockerd) in its own
// process group, so that it and whatever it starts are stopped together.
type daemon struct {
	name string
	cmd  *exec.Cmd
	log  string // path of its output
	done chan struct{}
}

// startDaemon starts name with args, waits until ready succeeds (at most
// timeout), and stops it when the test ends: SIGTERM to the group, SIGKILL
// after 15s, then any mount it left under dir is detached so the temp dir can go.
func startDaemon(t *testing.T, dir string, timeout time.Duration, ready func() error, name string, args ...string) *daemon {
	t.Helper()
	d := &daemon{name: filepath.Base(name), log: filepath.Join(dir, filepath.Base(name)+".log"), done: make(chan struct{})}
	logf, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(name, args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	// Its own process group, to stop its children with it; and killed if the
	// test binary dies before its cleanups run (a test timeout).
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = d.cmd.Wait(); logf.Close(); close(d.done) }()
	t.Cleanup(func() { d.stop(t); unmountUnder(t, dir) })
	err = waitUntil(timeout, func() error {
		select {
		case <-d.done:
			return fmt.Errorf("%s exited: %v", d.name, d.cmd.ProcessState)
		default:
		}
		return ready()
	})
	if err != nil {
		t.Fatalf("%s did not start: %v\n%s", d.name, err, d.tail())
	}
	return d
}

// stop ends the daemon's process group, politely first.
func (d *daemon) stop(t *testing.T) {
	pgid := d.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		t.Logf("%s did not stop within 15s of SIGTERM; killing it", d.name)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-d.done
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL) // children that outlived their parent
}

// tail returns the end of the daemon's log, for failure messages.
func (d *daemon) tail() string {
	b, _ := os.ReadFile(d.log)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// unmountUnder detaches mounts left below dir (dockerd bind-mounts its
// data-root onto itself), deepest first.
func unmountUnder(t *testing.T, dir string) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 1 && (fields[1] == dir || strings.HasPrefix(fields[1], dir+"/")) {
			mounts = append(mounts, fields[1])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mounts[i], syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", mounts[i], err)
		}
	}
}

// shortTempDir is a temp dir with a short path: unix socket paths are limited
// to 108 bytes, and daemons put theirs a few levels below their state dir.
func shortTempDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unmountUnder(t, dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("remove %s: %v", dir, err)
		}
	})
	return dir
}

// writeFile writes a config file, failing the test on error.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The images: what a client must end up with, digest by digest.

// imageWant is what a client pulling one tag for linux/amd64 must report or
// store.
type imageWant struct {
	top      v1.Hash   // the digest the tag points to (an index for a multi-arch image)
	manifest v1.Hash   // the linux/amd64 image manifest (top for a single image)
	config   v1.Hash   // its config blob: docker's and podman's image ID
	layers   []v1.Hash // compressed layer digests, as in the manifest
	diffIDs  []v1.Hash // uncompressed layer digests, as in the config
	others   []v1.Hash // layers of the other platforms, which must not be pulled
}

// seeded is an image pushed to an upstream as repo:tag.
type seeded struct {
	repo, tag string
	want      imageWant
}

func (s seeded) ref() string { return s.repo + ":" + s.tag }

// platformImage builds an image for os/arch with one random layer of each size.
func platformImage(t *testing.T, goos, goarch string, mt types.MediaType, sizes ...int64) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, mt)
	layerType, configType := types.DockerLayer, types.DockerConfigJSON
	if mt == types.OCIManifestSchema1 {
		layerType, configType = types.OCILayer, types.OCIConfigJSON
	}
	img = mutate.ConfigMediaType(img, configType)
	for _, size := range sizes {
		l, err := random.Layer(size, layerType)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = goos, goarch
	cf.Config.Cmd = []string{"/bin/true"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// multiArch builds an OCI index of a linux/amd64 and a linux/arm64 image.
func multiArch(t *testing.T, sizes ...int64) (v1.ImageIndex, v1.Image, v1.Image) {
	t.Helper()
	amd := platformImage(t, "linux", "amd64", types.OCIManifestSchema1, sizes...)
	arm := platformImage(t, "linux", "arm64", types.OCIManifestSchema1, sizes...)
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	return idx, amd, arm
}

// wantImage lists the digests of img.
func wantImage(t *testing.T, img v1.Image) imageWant {
	t.Helper()
	var w imageWant
	var err error
	if w.manifest, err = img.Digest(); err != nil {
		t.Fatal(err)
	}
	w.top = w.manifest
	if w.config, err = img.ConfigName(); err != nil {
		t.Fatal(err)
	}
	w.layers, w.diffIDs = layerDigests(t, img)
	return w
}

// wantIndex lists the digests of idx as pulled for its amd64 image.
func wantIndex(t *testing.T, idx v1.ImageIndex, amd, arm v1.Image) imageWant {
	t.Helper()
	w := wantImage(t, amd)
	var err error
	if w.top, err = idx.Digest(); err != nil {
		t.Fatal(err)
	}
	w.others, _ = layerDigests(t, arm)
	return w
}

func layerDigests(t *testing.T, img v1.Image) (compressed, uncompressed []v1.Hash) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		u, err := l.DiffID()
		if err != nil {
			t.Fatal(err)
		}
		compressed, uncompressed = append(compressed, d), append(uncompressed, u)
	}
	return compressed, uncompressed
}

// The upstreams and the mirror.

// hostB is the registry name clients use for the second upstream. It never
// resolves: only the mirror, which maps it to B's loopback URL, can serve it.
const hostB = "registry-b.test"

// upstreams are two distribution registries seeded with the test's images.
type upstreams struct {
	A, B *testregistry.Registry // A: the default upstream, standing in for Docker Hub

	App, Multi   seeded // on A: library/e2e-app:v1 (one platform), library/e2e-multi:v1 (index)
	AppB, MultiB seeded // on B: owner/app:v1, owner/multi:v1
}

// startUpstreams starts A and B and pushes the images: a single-platform
// image with layers of 1 KiB, 1 MiB and 8 MiB and a linux/amd64+arm64 index
// on each, Docker media types for A's image and OCI for B's.
func startUpstreams(t *testing.T) *upstreams {
	t.Helper()
	u := &upstreams{A: startRegistry(t), B: startRegistry(t)}
	sizes := []int64{1 << 10, 1 << 20, 8 << 20}
	u.App = pushImage(t, u.A, "library/e2e-app", platformImage(t, "linux", "amd64", types.DockerManifestSchema2, sizes...))
	u.AppB = pushImage(t, u.B, "owner/app", platformImage(t, "linux", "amd64", types.OCIManifestSchema1, sizes...))
	u.Multi = pushIndex(t, u.A, "library/e2e-multi", 4<<10, 256<<10)
	u.MultiB = pushIndex(t, u.B, "owner/multi", 4<<10, 256<<10)
	return u
}

// startRegistry starts a distribution registry on filesystem storage, as
// registries run in production (and its in-memory driver mislists some tags).
func startRegistry(t *testing.T) *testregistry.Registry {
	t.Helper()
	return testregistry.Start(t, testregistry.WithRoot(t.TempDir()))
}

func pushImage(t *testing.T, reg *testregistry.Registry, repo string, img v1.Image) seeded {
	t.Helper()
	s := seeded{repo: repo, tag: "v1", want: wantImage(t, img)}
	reg.Push(t, s.ref(), img)
	return s
}

func pushIndex(t *testing.T, reg *testregistry.Registry, repo string, sizes ...int64) seeded {
	t.Helper()
	idx, amd, arm := multiArch(t, sizes...)
	s := seeded{repo: repo, tag: "v1", want: wantIndex(t, idx, amd, arm)}
	reg.PushIndex(t, s.ref(), idx)
	return s
}

// mirror is the proxy binary serving both upstreams.
type mirror struct {
	Addr string // 127.0.0.1:port
	Logs *syncbuf.Buffer
	cmd  *exec.Cmd
}

// startMirror runs the binary with A as proxy.remoteurl and two upstreams:
// hostB -> B, and docker.io -> A. The latter is there because containerd asks
// a mirror of docker.io with ns=docker.io, which the default upstream answers
// only when its remoteurl is Docker Hub itself; here A stands in for Docker Hub.
func startMirror(t *testing.T, u *upstreams) *mirror {
	t.Helper()
	extra := fmt.Sprintf(`upstreams:
  - host: %s
    remoteurl: %s
  - host: docker.io
    remoteurl: %s
`, hostB, u.B.URL, u.A.URL)
	addr, cmd, logs, _ := startProxyConfig(t, buildProxy(t), u.A.URL, t.TempDir(), extra)
	return &mirror{Addr: addr, Logs: logs, cmd: cmd}
}

// requestLines returns the mirror's access log lines for requests whose path
// contains pathPart. (The path is quoted when it holds a colon, as digests do.)
func (m *mirror) requestLines(pathPart string) []string {
	var out []string
	for _, line := range strings.Split(m.Logs.String(), "\n") {
		if strings.Contains(line, "msg=request") && strings.Contains(line, pathPart) {
			out = append(out, line)
		}
	}
	return out
}

// checkNotFetched fails if the mirror's access log has a request for any of
// the blobs (another platform's layers, which a client must not pull).
func (m *mirror) checkNotFetched(t *testing.T, blobs []v1.Hash) {
	t.Helper()
	for _, d := range blobs {
		if lines := m.requestLines("/blobs/" + d.String()); len(lines) > 0 {
			t.Errorf("a client asked for %s, a layer of another platform:\n%s", d, strings.Join(lines, "\n"))
		}
	}
}

// checkRouted fails unless the mirror's access log has a 200 for a manifest
// and one for a blob of repo, each with the field want (e.g. "ns=docker.io").
// A line is written just after its response: allow it a moment.
func (m *mirror) checkRouted(t *testing.T, repo, want string) {
	t.Helper()
	for _, endpoint := range []string{"/manifests/", "/blobs/"} {
		err := waitUntil(5*time.Second, func() error {
			for _, line := range m.requestLines("/v2/" + repo + endpoint) {
				if strings.Contains(line, " "+want) && strings.Contains(line, "status=200") {
					return nil
				}
			}
			return fmt.Errorf("no 200 for %s%s with %s", repo, endpoint, want)
		})
		if err != nil {
			t.Errorf("the mirror's access log: %v:\n%s", err, strings.Join(m.requestLines("/v2/"), "\n"))
		}
	}
}
