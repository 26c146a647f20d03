//go:build e2e

package e2e

// Real clients pull through the mirror by the names their users write:
// containerd (ctr with a hosts.toml mirror), podman (registries.conf mirror)
// and dockerd (registry-mirrors). Each runs as a daemon or with its storage in
// a temp dir of its own, and each pulled digest is checked against the images
// the test pushed upstream.

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// pullTimeout bounds one client pull of the test images (9 MiB at most).
const pullTimeout = 2 * time.Minute

// Every client pulls for linux/amd64, whatever the host: the digests a client
// ends up with are then known (the index's amd64 image), and layers of
// linux/arm64 must not be fetched.

// pullCase is one image a client pulls by its upstream name.
type pullCase struct {
	ref     string // the name the client pulls
	img     seeded // what it must end up with
	logRepo string // the repository in the mirror's request paths
	routed  string // the access log field that shows the routing ("ns=docker.io"), if any
}

// TestContainerdPullThroughMirror: ctr pulls docker.io/... and registry-b.test/...
// by their own names; a hosts.toml makes the mirror their mirror, and the
// mirror's access log shows containerd's requests came with ns=.
func TestContainerdPullThroughMirror(t *testing.T) {
	containerdBin := requireTool(t, "containerd", "apt-get install containerd")
	ctrBin := requireTool(t, "ctr", "apt-get install containerd")
	requireRoot(t, "containerd")
	u := startUpstreams(t)
	m := startMirror(t, u)
	c := startContainerd(t, containerdBin, ctrBin)
	hostsDir := c.mirrorHosts(t, m.Addr, "docker.io", hostB)

	for _, tc := range []pullCase{
		{"docker.io/library/e2e-app:v1", u.App, "library/e2e-app", "ns=docker.io"},
		{"docker.io/library/e2e-multi:v1", u.Multi, "library/e2e-multi", "ns=docker.io"},
		{hostB + "/owner/app:v1", u.AppB, "owner/app", "ns=" + hostB},
		{hostB + "/owner/multi:v1", u.MultiB, "owner/multi", "ns=" + hostB},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			c.ctr(t, "images", "pull", "--hosts-dir", hostsDir, "--snapshotter", "native", "--platform", "linux/amd64", tc.ref)
			c.checkImage(t, tc.ref, tc.img.want)
			m.checkRouted(t, tc.logRepo, tc.routed)
			m.checkNotFetched(t, tc.img.want.others)
		})
	}
	if n := u.B.Count("GET", "blobs"); n == 0 {
		t.Error("upstream B served no blob: the registry-b.test pulls did not go through it")
	}
}

// containerd is a containerd daemon with its root, state and sockets in a temp dir.
type containerd struct {
	dir, sock, ctrBin string
}

// startContainerd writes a config that keeps every path in a temp dir and
// leaves out the CRI plugin (no CNI, no kubelet), and starts containerd.
func startContainerd(t *testing.T, containerdBin, ctrBin string) *containerd {
	t.Helper()
	dir := shortTempDir(t, "e2e-ctrd-")
	c := &containerd{dir: dir, sock: filepath.Join(dir, "c.sock"), ctrBin: ctrBin}
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, fmt.Sprintf(`version = 2
root = "%[1]s/root"
state = "%[1]s/state"
temp = "%[1]s/tmp"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "%[2]s"

[ttrpc]
  address = "%[2]s.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "%[1]s/opt"
`, dir, c.sock))
	startDaemon(t, dir, 30*time.Second, func() error {
		_, err := runErr(5*time.Second, nil, ctrBin, "--address", c.sock, "version")
		return err
	}, containerdBin, "--config", cfg, "--log-level", "info")
	return c
}

// ctr runs a ctr command against this containerd in the namespace "e2e".
func (c *containerd) ctr(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, pullTimeout, nil, c.ctrBin, append([]string{"--address", c.sock, "--namespace", "e2e"}, args...)...)
}

// mirrorHosts writes a hosts.toml per registry that makes the mirror at addr
// its mirror (http, pull and resolve), and returns the hosts directory.
func (c *containerd) mirrorHosts(t *testing.T, addr string, registries ...string) string {
	t.Helper()
	dir := filepath.Join(c.dir, "hosts")
	for _, reg := range registries {
		writeFile(t, filepath.Join(dir, reg, "hosts.toml"), fmt.Sprintf(`# the registry's own address is a dead loopback port: only the mirror can serve
server = "http://%s"

[host."http://%s"]
  capabilities = ["pull", "resolve"]
`, deadAddr(t), addr))
	}
	return dir
}

// checkImage checks that containerd recorded ref at the tag's digest, holds
// the manifest, config and every layer in its content store, unpacked each
// layer to its diffID, and fetched no layer of another platform.
func (c *containerd) checkImage(t *testing.T, ref string, want imageWant) {
	t.Helper()
	if got := c.imageDigest(t, ref); got != want.top.String() {
		t.Errorf("ctr images ls: %s at %s, want %s", ref, got, want.top)
	}
	content := c.content(t)
	for _, d := range append([]v1.Hash{want.top, want.manifest, want.config}, want.layers...) {
		if _, ok := content[d.String()]; !ok {
			t.Errorf("content store lacks %s", d)
		}
	}
	for i, l := range want.layers {
		if got := content[l.String()]["containerd.io/uncompressed"]; got != want.diffIDs[i].String() {
			t.Errorf("layer %s unpacked to %q, want diffID %s", l, got, want.diffIDs[i])
		}
	}
	for _, d := range want.others {
		if _, ok := content[d.String()]; ok {
			t.Errorf("content store has %s, a layer of another platform", d)
		}
	}
}

// imageDigest returns the target digest ctr lists for ref.
func (c *containerd) imageDigest(t *testing.T, ref string) string {
	t.Helper()
	for _, line := range strings.Split(c.ctr(t, "images", "ls"), "\n") {
		// REF TYPE DIGEST SIZE PLATFORMS LABELS
		if f := strings.Fields(line); len(f) > 2 && f[0] == ref {
			return f[2]
		}
	}
	t.Fatalf("ctr images ls does not list %s", ref)
	return ""
}

// content returns the content store's digests with their labels.
func (c *containerd) content(t *testing.T) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, line := range strings.Split(c.ctr(t, "content", "ls"), "\n") {
		// DIGEST SIZE AGE LABELS; AGE has spaces ("3 seconds"), LABELS has none
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasPrefix(f[0], "sha256:") {
			continue
		}
		labels := map[string]string{}
		if last := f[len(f)-1]; strings.Contains(last, "=") {
			for _, kv := range strings.Split(last, ",") {
				k, v, _ := strings.Cut(kv, "=")
				labels[k] = v
			}
		}
		out[f[0]] = labels
	}
	return out
}

// unmarshal decodes a client's JSON output, failing the test with it on error.
func unmarshal(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
}

// TestPodmanPullThroughMirror: podman pulls docker.io/... and registry-b.test/...
// by their own names; registries.conf makes the mirror their [[registry.mirror]],
// reached as the default upstream (docker.io) and by the host as the first
// path component (registry-b.test).
func TestPodmanPullThroughMirror(t *testing.T) {
	podmanBin := requireTool(t, "podman", "apt-get install podman")
	u := startUpstreams(t)
	m := startMirror(t, u)
	p := newPodman(t, podmanBin, m.Addr)

	for _, tc := range []pullCase{
		{"docker.io/library/e2e-app:v1", u.App, "library/e2e-app", "upstream=\"" + u.A.Host + "\""},
		{"docker.io/library/e2e-multi:v1", u.Multi, "library/e2e-multi", "upstream=\"" + u.A.Host + "\""},
		{hostB + "/owner/app:v1", u.AppB, hostB + "/owner/app", "upstream=\"" + u.B.Host + "\""},
		{hostB + "/owner/multi:v1", u.MultiB, hostB + "/owner/multi", "upstream=\"" + u.B.Host + "\""},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			p.run(t, "pull", "--quiet", "--platform", "linux/amd64", "--signature-policy", p.policy, tc.ref)
			p.checkImage(t, tc.ref, tc.img)
			m.checkRouted(t, tc.logRepo, tc.routed)
			m.checkNotFetched(t, tc.img.want.others)
		})
	}
}

// podman runs podman with its storage, run and tmp dirs in a temp dir and the
// test's registries.conf, storage.conf (vfs) and signature policy.
type podman struct {
	bin    string
	args   []string // global flags
	env    []string
	policy string // signature policy for pulls: accept anything, whatever /etc says
}

func newPodman(t *testing.T, bin, mirrorAddr string) *podman {
	t.Helper()
	dir := shortTempDir(t, "e2e-podman-")
	dead := deadAddr(t)
	// Each registry's own location is a dead loopback port: only the mirror
	// can serve. registry-b.test goes to the mirror under its host as the
	// first path component, the form `docker pull mirror/ghcr.io/...` uses.
	writeFile(t, filepath.Join(dir, "registries.conf"), fmt.Sprintf(`unqualified-search-registries = []

[[registry]]
prefix = "docker.io"
location = "%[1]s"
insecure = true

[[registry.mirror]]
location = "%[2]s"
insecure = true

[[registry]]
prefix = "%[3]s"
location = "%[1]s"
insecure = true

[[registry.mirror]]
location = "%[2]s/%[3]s"
insecure = true
`, dead, mirrorAddr, hostB))
	writeFile(t, filepath.Join(dir, "storage.conf"), fmt.Sprintf(`[storage]
driver = "vfs"
graphroot = "%[1]s/root"
runroot = "%[1]s/run"
`, dir))
	writeFile(t, filepath.Join(dir, "policy.json"), `{"default": [{"type": "insecureAcceptAnything"}]}`)
	writeFile(t, filepath.Join(dir, "containers.conf"), "[engine]\nevents_logger = \"none\"\ncgroup_manager = \"cgroupfs\"\n")
	return &podman{
		bin:    bin,
		policy: dir + "/policy.json",
		args: []string{"--root", dir + "/root", "--runroot", dir + "/run", "--storage-driver", "vfs",
			"--tmpdir", dir + "/tmp", "--network-config-dir", dir + "/net",
			"--cgroup-manager=cgroupfs", "--events-backend=none"},
		env: []string{
			"CONTAINERS_REGISTRIES_CONF=" + dir + "/registries.conf",
			"CONTAINERS_STORAGE_CONF=" + dir + "/storage.conf",
			"CONTAINERS_CONF=" + dir + "/containers.conf",
			"TMPDIR=" + dir, // image pulls stage blobs in TMPDIR (default /var/tmp)
		},
	}
}

func (p *podman) run(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, pullTimeout, p.env, p.bin, append(append([]string{}, p.args...), args...)...)
}

// checkImage checks podman's image ID (the config digest), its manifest
// digest and repo digests (index and image), and the layers' diffIDs.
func (p *podman) checkImage(t *testing.T, ref string, img seeded) {
	t.Helper()
	var got []struct {
		ID          string `json:"Id"`
		Digest      string
		RepoDigests []string
		RootFS      struct{ Layers []string }
	}
	unmarshal(t, p.run(t, "image", "inspect", "--format", "json", ref), &got)
	if len(got) != 1 {
		t.Fatalf("podman image inspect %s: %d images", ref, len(got))
	}
	want := img.want
	if got[0].ID != want.config.Hex {
		t.Errorf("image ID %s, want the config digest %s", got[0].ID, want.config.Hex)
	}
	if got[0].Digest != want.top.String() { // podman records the digest the tag pointed at
		t.Errorf("image digest %s, want %s", got[0].Digest, want.top)
	}
	repo, _, _ := strings.Cut(ref, ":")
	for _, d := range []v1.Hash{want.top, want.manifest} { // the index and the image it chose
		if !contains(got[0].RepoDigests, repo+"@"+d.String()) {
			t.Errorf("repo digests %v lack %s@%s", got[0].RepoDigests, repo, d)
		}
	}
	checkDiffIDs(t, got[0].RootFS.Layers, want.diffIDs)
}

// checkDiffIDs compares a client's uncompressed layer digests with the config's.
func checkDiffIDs(t *testing.T, got []string, want []v1.Hash) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("layers %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i].String() {
			t.Errorf("layer %d: diffID %s, want %s", i, got[i], want[i])
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestDockerdPullThroughMirror: dockerd with the mirror as its registry-mirrors
// entry pulls `docker pull e2e-app:v1` by the Docker Hub name; dockerd mirrors
// Docker Hub only, so this covers the default upstream (A stands in for Docker
// Hub), asked for library/<name> without ns=.
func TestDockerdPullThroughMirror(t *testing.T) {
	dockerdBin := requireTool(t, "dockerd", "apt-get install docker.io")
	dockerBin := dockerCLI(t, dockerdBin)
	requireRoot(t, "dockerd")
	u := startUpstreams(t)
	m := startMirror(t, u)
	d := startDockerd(t, dockerdBin, dockerBin, m.Addr)

	for _, tc := range []pullCase{
		{"e2e-app:v1", u.App, "library/e2e-app", "upstream=\"" + u.A.Host + "\""},
		{"e2e-multi:v1", u.Multi, "library/e2e-multi", "upstream=\"" + u.A.Host + "\""},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			out := d.docker(t, "pull", "--platform", "linux/amd64", tc.ref)
			if !strings.Contains(out, "Digest: "+tc.img.want.top.String()) {
				t.Errorf("docker pull %s printed no digest %s:\n%s", tc.ref, tc.img.want.top, out)
			}
			d.checkImage(t, tc.ref, tc.img)
			m.checkRouted(t, tc.logRepo, tc.routed)
			m.checkNotFetched(t, tc.img.want.others)
			for _, line := range m.requestLines("/v2/" + tc.logRepo + "/") {
				if strings.Contains(line, " ns=") {
					t.Errorf("dockerd sent ns=, which it is not known to do: %s", line)
				}
			}
		})
	}
}

// dockerCLI returns the docker client that came with dockerd (Debian puts it
// in /usr/bin, dockerd in /usr/sbin), else the one on PATH.
func dockerCLI(t *testing.T, dockerdBin string) string {
	t.Helper()
	for _, dir := range []string{filepath.Dir(dockerdBin), "/usr/bin"} {
		p := filepath.Join(dir, "docker")
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	return requireTool(t, "docker", "apt-get install docker.io")
}

// dockerd is a Docker daemon with every path in a temp dir and no network
// setup (no bridge, no iptables), talking on its own unix socket.
type dockerd struct {
	cli  string
	host string // unix://...
}

func startDockerd(t *testing.T, dockerdBin, dockerBin, mirrorAddr string) *dockerd {
	t.Helper()
	dir := shortTempDir(t, "e2e-dockerd-")
	d := &dockerd{cli: dockerBin, host: "unix://" + dir + "/d.sock"}
	cfg := filepath.Join(dir, "daemon.json")
	conf, err := json.Marshal(map[string]any{
		"registry-mirrors":    []string{"http://" + mirrorAddr},
		"insecure-registries": []string{mirrorAddr}, // a plain-http mirror must be allowed
		"iptables":            false,
		"ip-forward":          false,
		"ip-masq":             false,
		"bridge":              "none",
		"storage-driver":      "vfs",
		"data-root":           dir + "/data",
		"exec-root":           dir + "/exec",
		"pidfile":             dir + "/docker.pid",
		"deprecated-key-path": dir + "/key.json", // else it writes /etc/docker/key.json
	})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfg, string(conf))
	startDaemon(t, dir, 60*time.Second, func() error {
		_, err := runErr(5*time.Second, nil, dockerBin, "-H", d.host, "version")
		return err
	}, dockerdBin, "--config-file", cfg, "-H", d.host)
	return d
}

func (d *dockerd) docker(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, pullTimeout, nil, d.cli, append([]string{"-H", d.host}, args...)...)
}

// checkImage checks docker's image ID (the config digest), its repo digest
// (the digest the tag pointed at) and the layers' diffIDs.
func (d *dockerd) checkImage(t *testing.T, ref string, img seeded) {
	t.Helper()
	var got []struct {
		ID          string `json:"Id"`
		RepoDigests []string
		RootFS      struct{ Layers []string }
	}
	unmarshal(t, d.docker(t, "image", "inspect", ref), &got)
	if len(got) != 1 {
		t.Fatalf("docker image inspect %s: %d images", ref, len(got))
	}
	want := img.want
	if got[0].ID != want.config.String() {
		t.Errorf("image ID %s, want the config digest %s", got[0].ID, want.config)
	}
	repo, _, _ := strings.Cut(ref, ":")
	if !contains(got[0].RepoDigests, repo+"@"+want.top.String()) {
		t.Errorf("repo digests %v lack %s@%s", got[0].RepoDigests, repo, want.top)
	}
	checkDiffIDs(t, got[0].RootFS.Layers, want.diffIDs)
}
