//go:build e2e

// Package e2e drives the built proxy binary with real clients over loopback:
// crane, skopeo, containerd (ctr), podman, dockerd and the OCI conformance
// suite; and a cluster of three of its processes on versitygw and
// redis-server (cluster_test.go). Run with: go test -tags e2e ./e2e/ (as root,
// for the daemons). crane and skopeo are required; a test whose other client
// or server is missing skips, unless E2E_REQUIRE_CLIENTS=1 (.ci/test installs
// every one and sets it).
package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/ocimirror/proxy/internal/syncbuf"
	"github.com/ocimirror/proxy/internal/testregistry"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startProxy runs the binary with a config pointing at upstream and waits until
// it answers /v2/.
func startProxy(t *testing.T, bin, upstreamURL string) (string, *exec.Cmd, *syncbuf.Buffer) {
	t.Helper()
	addr, cmd, logs, _ := startProxyConfig(t, bin, upstreamURL, t.TempDir(), "")
	return addr, cmd, logs
}

// startProxyConfig starts the binary on storage root with extra proxy-section
// YAML, and returns the config file's path too.
func startProxyConfig(t *testing.T, bin, upstreamURL, root, extra string) (string, *exec.Cmd, *syncbuf.Buffer, string) {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
proxy:
  remoteurl: %s
%s`, root, addr, upstreamURL, extra)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, logs := runProxy(t, addr, nil, bin, "serve", cfgPath)
	return addr, cmd, logs, cfgPath
}

// runProxy starts the binary with args and extra environment, and waits until
// addr answers /v2/.
func runProxy(t *testing.T, addr string, env []string, bin string, args ...string) (*exec.Cmd, *syncbuf.Buffer) {
	t.Helper()
	logs := &syncbuf.Buffer{}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return cmd, logs
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("proxy did not start:\n%s", logs.String())
	return nil, nil
}

func crane(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("crane", append(args, "--insecure")...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("crane %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestCranePullThroughBinary(t *testing.T) {
	if _, err := exec.LookPath("crane"); err != nil {
		t.Fatal("crane not on PATH: go install github.com/google/go-containerregistry/cmd/crane@v0.22.1")
	}
	reg := testregistry.Start(t)
	img := reg.PushRandom(t, "e2e/app:v1", 2<<20, 3)
	want, _ := img.Digest()
	bin := buildProxy(t)
	addr, cmd, logs := startProxy(t, bin, reg.URL)

	ref := addr + "/e2e/app:v1"
	if got := crane(t, "digest", ref); got != want.String() {
		t.Fatalf("crane digest through the proxy = %s, want %s", got, want)
	}
	out := filepath.Join(t.TempDir(), "img.tar")
	crane(t, "pull", ref, out) // cold
	cold := reg.Count("GET", "blobs")
	if cold != 4 {
		t.Fatalf("cold pull: %d upstream blob GETs, want 4", cold)
	}
	crane(t, "pull", ref, out) // warm
	if n := reg.Count("GET", "blobs"); n != cold {
		t.Fatalf("warm pull made %d upstream blob GETs, want 0", n-cold)
	}
	if !strings.Contains(logs.String(), "cache=hit") {
		t.Fatalf("access log has no cache=hit line:\n%s", logs.String())
	}
	checkOps(t, addr)

	// SIGTERM stops it cleanly.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("proxy did not stop within 10s of SIGTERM")
	}
}

func TestConfigErrorsExit2(t *testing.T) {
	bin := buildProxy(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte("version: 0.1\nproxy:\n  remoteur: https://x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"unknown key", []string{"serve", bad}, nil, "proxy.remoteur"},
		{"bad env value", []string{"serve"}, []string{"REGISTRY_PROXY_TTL=7days"}, "proxy.ttl"},
		{"unknown command", []string{"frobnicate"}, nil, "unknown command"},
	}
	for _, tc := range cases {
		cmd := exec.Command(bin, tc.args...)
		cmd.Env = append(os.Environ(), tc.env...)
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: err %v, output %q; want exit 2 naming %q", tc.name, err, out, tc.want)
		}
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "proxy ") {
		t.Fatalf("version: %v %q", err, out)
	}
}

// TestShippedConfigsRun: the embedded default and config.example.yml start as
// they are (with the address, storage and upstream moved by REGISTRY_* variables).
func TestShippedConfigsRun(t *testing.T) {
	reg := testregistry.Start(t)
	img := reg.PushRandom(t, "shipped/app:v1", 1024, 1)
	want, _ := img.Digest()
	bin := buildProxy(t)
	for _, args := range [][]string{{"serve"}, {"serve", "../config.example.yml"}, {"serve", "--config", "../config.example.yml"}} {
		addr := freeAddr(t)
		env := []string{"REGISTRY_HTTP_ADDR=" + addr, "REGISTRY_PROXY_REMOTEURL=" + reg.URL,
			"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=" + t.TempDir()}
		cmd, logs := runProxy(t, addr, env, bin, args...)
		if got := crane(t, "digest", addr+"/shipped/app:v1"); got != want.String() {
			t.Fatalf("%v: digest %s, want %s\n%s", args, got, want, logs)
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
}

// TestSkopeoCopyThroughBinary: skopeo copies a single image and a multi-platform
// index (--all) through the proxy, digests preserved.
func TestSkopeoCopyThroughBinary(t *testing.T) {
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Fatal("skopeo not on PATH: apt-get install -y skopeo")
	}
	reg := testregistry.Start(t)
	img := reg.PushRandom(t, "sk/app:v1", 100_000, 2)
	idx, err := random.Index(50_000, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	reg.PushIndex(t, "sk/multi:v1", idx)
	bin := buildProxy(t)
	addr, _, logs := startProxy(t, bin, reg.URL)

	for _, tc := range []struct {
		ref  string
		want func() (v1.Hash, error)
		all  bool
	}{
		{"sk/app:v1", img.Digest, false},
		{"sk/multi:v1", idx.Digest, true},
	} {
		want, _ := tc.want()
		dir := t.TempDir()
		args := []string{"--insecure-policy", "copy", "--src-tls-verify=false", "--preserve-digests"}
		if tc.all {
			args = append(args, "--all")
		}
		args = append(args, "docker://"+addr+"/"+tc.ref, "oci:"+dir+":v1")
		if out, err := exec.Command("skopeo", args...).CombinedOutput(); err != nil {
			t.Fatalf("skopeo %v: %v\n%s\n%s", args, err, out, logs)
		}
		index, err := os.ReadFile(filepath.Join(dir, "index.json"))
		if err != nil || !strings.Contains(string(index), want.String()) {
			t.Fatalf("%s: oci layout index %s does not name %s (%v)", tc.ref, index, want, err)
		}
	}
}

// TestEvictionAndRootLock: with delete enabled and a short TTL the binary evicts
// what nobody pulls, and a second process on the same storage root refuses to start.
func TestEvictionAndRootLock(t *testing.T) {
	reg := testregistry.Start(t)
	img := reg.PushRandom(t, "ev/app:v1", 50_000, 1)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	bin := buildProxy(t)
	root := t.TempDir()
	addr, _, logs, cfgPath := startProxyConfig(t, bin, reg.URL, root, "  ttl: 5s\n")
	crane(t, "pull", addr+"/ev/app:v1", filepath.Join(t.TempDir(), "img.tar"))
	blob := filepath.Join(root, "docker/registry/v2/blobs/sha256", ld.Hex[:2], ld.Hex, "data")
	// The fill commits just after the client has its last byte: allow it a moment.
	for wait := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, err := os.Stat(blob)
		if err == nil {
			break
		}
		if time.Now().After(wait) {
			t.Fatalf("layer not on disk 3s after the pull: %v", err)
		}
	}

	second := exec.Command(bin, "serve", cfgPath)
	second.Env = append(os.Environ(), "REGISTRY_HTTP_ADDR="+freeAddr(t))
	done := make(chan []byte, 1)
	go func() { out, _ := second.CombinedOutput(); done <- out }()
	select {
	case out := <-done:
		if second.ProcessState.ExitCode() == 0 || !strings.Contains(string(out), "in use") {
			t.Fatalf("second proxy on the same root: exit %d, %s", second.ProcessState.ExitCode(), out)
		}
	case <-time.After(10 * time.Second):
		_ = second.Process.Kill()
		t.Fatal("second proxy on the same root did not fail within 10s")
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(blob); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("layer still on disk 30s after a 5s TTL\n%s", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	crane(t, "pull", addr+"/ev/app:v1", filepath.Join(t.TempDir(), "img.tar")) // fetched again
}

// checkOps reads the health endpoints and the metrics of a proxy that served a
// cold and a warm pull.
func checkOps(t *testing.T, addr string) {
	t.Helper()
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + addr + p)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", p, err, resp)
		}
		resp.Body.Close()
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`proxy_cache_requests_total{result="hit",route="blobs"} 4`,
		`proxy_cache_requests_total{result="miss",route="blobs"} 4`,
		`proxy_blob_fills_total{outcome="ok",upstream="127.0.0.1:`,
		`proxy_http_requests_total{code="200",method="GET",route="manifests"}`,
		"proxy_cache_size_bytes ",
		"proxy_blob_fills_in_flight 0",
		`proxy_upstream_ratelimit_remaining{upstream="127.0.0.1:`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(string(body), "proxy_cache_size_bytes 0\n") {
		t.Error("cache size is 0 after a pull")
	}
}
