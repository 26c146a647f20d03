//go:build e2e

package e2e

// Hosted repositories through the built binary (issue 7): crane, skopeo and
// podman push to dev/... with htpasswd credentials and pull back through the
// proxy; anonymous pushes and wrong passwords are refused with a challenge;
// and the OCI conformance suite runs whole (pull, push, content discovery,
// content management) against the hosted namespace.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/ocimirror/proxy/internal/syncbuf"
	"golang.org/x/crypto/bcrypt"
)

// The one account of the hosted proxies, an admin (auth.admins). The password
// is distinctive so that a log line holding it is found.
const (
	hostedUser = "alice"
	hostedPass = "e2e-Pa55word-9f3c"
)

// hostedProxy is the binary with hosted.namespaces [dev], htpasswd auth and a
// 2s mirroring poll interval.
type hostedProxy struct {
	Addr     string // 127.0.0.1:port
	Root     string // storage root (hosted content in Root/hosted)
	Logs     *syncbuf.Buffer
	htpasswd string
	cmd      *exec.Cmd
}

// writeHtpasswd writes a bcrypt htpasswd file with hostedUser, as
// `htpasswd -Bc` would.
func writeHtpasswd(t *testing.T) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(hostedPass), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "htpasswd")
	writeFile(t, p, hostedUser+":"+string(h)+"\n")
	return p
}

// startHosted starts the binary on a new storage root.
func startHosted(t *testing.T) *hostedProxy {
	t.Helper()
	return startHostedOn(t, t.TempDir(), writeHtpasswd(t))
}

// startHostedOn starts the binary on storage root root with the htpasswd
// file at htpasswd. Its default upstream is a dead loopback port: nothing here
// goes upstream.
func startHostedOn(t *testing.T, root, htpasswd string) *hostedProxy {
	t.Helper()
	extra := fmt.Sprintf(`hosted:
  namespaces: [dev]
auth:
  htpasswd:
    realm: e2e-hosted
    path: %s
  admins: [%s]
mirror:
  pollinterval: 2s
`, htpasswd, hostedUser)
	addr, cmd, logs, _ := startProxyConfig(t, buildProxy(t), "http://"+deadAddr(t), root, extra)
	return &hostedProxy{Addr: addr, Root: root, Logs: logs, htpasswd: htpasswd, cmd: cmd}
}

// stop ends the proxy with SIGTERM and waits (at most 15s) until it exited.
func (h *hostedProxy) stop(t *testing.T) {
	t.Helper()
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("proxy exit after SIGTERM: %v\n%s", err, h.Logs)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("proxy did not stop within 15s of SIGTERM\n%s", h.Logs)
	}
}

// dockerConfig returns a DOCKER_CONFIG directory with credentials for the
// proxy written by `crane auth login` (user "" leaves it empty: anonymous).
func (h *hostedProxy) dockerConfig(t *testing.T, user, pass string) string {
	t.Helper()
	dir := t.TempDir()
	if user != "" {
		run(t, time.Minute, []string{"DOCKER_CONFIG=" + dir}, "crane", "auth", "login", h.Addr, "-u", user, "-p", pass)
		b, err := os.ReadFile(filepath.Join(dir, "config.json"))
		if err != nil || !strings.Contains(string(b), h.Addr) {
			t.Fatalf("crane auth login wrote no credentials for %s: %v %s", h.Addr, err, b)
		}
	}
	return dir
}

// craneAs runs crane --insecure with DOCKER_CONFIG=dockerConfig and returns
// its output and error.
func craneAs(dockerConfig string, args ...string) (string, error) {
	out, err := runErr(2*time.Minute, []string{"DOCKER_CONFIG=" + dockerConfig}, "crane", append(args, "--insecure")...)
	return strings.TrimSpace(out), err
}

// request sends a plain HTTP request to the proxy, with Basic credentials
// when user is not empty, and returns the status, headers and body.
func (h *hostedProxy) request(t *testing.T, method, path, user, pass string, body io.Reader) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+h.Addr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// manifestDigest asks the proxy anonymously for repo:tag's manifest digest
// (HEAD), "" when it has none.
func (h *hostedProxy) manifestDigest(t *testing.T, repo, tag string) string {
	t.Helper()
	return headDigest(t, "http://"+h.Addr, repo, tag)
}

// ociLayout writes img to a new OCI layout directory under the tag "v1". The
// path is lower case: podman names an image pulled from a layout after it.
func ociLayout(t *testing.T, img v1.Image) string {
	t.Helper()
	dir := shortTempDir(t, "e2e-oci-")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"})); err != nil {
		t.Fatal(err)
	}
	return dir
}

// cranePush pushes img to ref (host/repo:tag) with crane and the credentials
// in dockerConfig, and fails unless crane reports img's digest. A tarball
// holds Docker media types only, so img must have them
// (types.DockerManifestSchema2): crane would push an OCI image as another.
func cranePush(t *testing.T, dockerConfig string, img v1.Image, ref string) string {
	t.Helper()
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	out, err := craneAs(dockerConfig, "push", imageTarball(t, img), ref)
	if err != nil {
		t.Fatalf("crane push %s: %v\n%s", ref, err, out)
	}
	if !strings.HasSuffix(out, "@"+want.String()) {
		t.Fatalf("crane push %s printed %q, want the digest %s", ref, out, want)
	}
	return want.String()
}

// imageTarball writes img as a tarball crane push takes.
func imageTarball(t *testing.T, img v1.Image) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img.tar")
	if err := tarball.WriteToFile(p, nil, img); err != nil {
		t.Fatal(err)
	}
	return p
}

// pulledBack pulls repo:tag through the proxy with crane, anonymously (every
// blob is fetched and checked against its digest), and fails unless the
// manifest digest is want and the config digest wantConfig.
func (h *hostedProxy) pulledBack(t *testing.T, repo, tag string, want, wantConfig string) {
	t.Helper()
	anon := h.dockerConfig(t, "", "")
	ref := h.Addr + "/" + repo + ":" + tag
	got, err := craneAs(anon, "digest", ref)
	if err != nil || got != want {
		t.Errorf("crane digest %s = %q (%v), want %s", ref, got, err, want)
	}
	raw, err := craneAs(anon, "manifest", ref)
	if err != nil {
		t.Fatalf("crane manifest %s: %v\n%s", ref, err, raw)
	}
	var m v1.Manifest
	unmarshal(t, raw, &m)
	if m.Config.Digest.String() != wantConfig {
		t.Errorf("%s: config digest %s, want %s", ref, m.Config.Digest, wantConfig)
	}
	dir := t.TempDir()
	if out, err := craneAs(anon, "pull", "--format", "oci", ref, dir); err != nil {
		t.Fatalf("crane pull %s: %v\n%s", ref, err, out)
	}
	index, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil || !strings.Contains(string(index), want) {
		t.Errorf("crane pull %s: layout index %s does not name %s (%v)", ref, index, want, err)
	}
}

// TestHostedPushWithClients: crane, skopeo and podman push to the hosted
// namespace with the htpasswd user and pull back through the proxy, digests
// checked; an anonymous push gets 401 with a Basic challenge and a message
// that says how to log in; a wrong password gets 401 too, and the proxy's log
// names the user but never a password.
func TestHostedPushWithClients(t *testing.T) {
	requireTool(t, "crane", "go install github.com/google/go-containerregistry/cmd/crane@v0.22.1")
	h := startHosted(t)
	creds := h.dockerConfig(t, hostedUser, hostedPass)

	t.Run("crane", func(t *testing.T) {
		img := platformImage(t, "linux", "amd64", types.DockerManifestSchema2, 1<<10, 1<<20)
		w := wantImage(t, img)
		cranePush(t, creds, img, h.Addr+"/dev/crane:v1")
		h.pulledBack(t, "dev/crane", "v1", w.manifest.String(), w.config.String())
	})

	t.Run("skopeo", func(t *testing.T) {
		requireTool(t, "skopeo", "apt-get install skopeo")
		img := platformImage(t, "linux", "amd64", types.OCIManifestSchema1, 2<<10, 512<<10)
		w := wantImage(t, img)
		digestFile := filepath.Join(t.TempDir(), "digest")
		run(t, 2*time.Minute, nil, "skopeo", "--insecure-policy", "copy", "--preserve-digests",
			"--dest-creds", hostedUser+":"+hostedPass, "--dest-tls-verify=false", "--digestfile", digestFile,
			"oci:"+ociLayout(t, img)+":v1", "docker://"+h.Addr+"/dev/skopeo:v1")
		if got, _ := os.ReadFile(digestFile); string(got) != w.manifest.String() {
			t.Errorf("skopeo pushed %q, want %s", got, w.manifest)
		}
		h.pulledBack(t, "dev/skopeo", "v1", w.manifest.String(), w.config.String())
	})

	t.Run("podman", func(t *testing.T) {
		podmanBin := requireTool(t, "podman", "apt-get install podman")
		p := newPodman(t, podmanBin, h.Addr)
		img := platformImage(t, "linux", "amd64", types.OCIManifestSchema1, 3<<10, 256<<10)
		w := wantImage(t, img)
		id := strings.TrimSpace(p.run(t, "pull", "--quiet", "--signature-policy", p.policy, "oci:"+ociLayout(t, img)+":v1"))
		if id != w.config.Hex {
			t.Fatalf("podman pull from the layout: image ID %s, want %s", id, w.config.Hex)
		}
		// podman pushes from its own storage: it may compress the layers
		// anew, so the manifest digest is the one it reports, and the config
		// (the image ID) and the layers' diffIDs are the original's.
		digestFile := filepath.Join(t.TempDir(), "digest")
		ref := h.Addr + "/dev/podman:v1"
		p.run(t, "push", "--quiet", "--creds", hostedUser+":"+hostedPass, "--tls-verify=false",
			"--digestfile", digestFile, id, "docker://"+ref)
		pushed, _ := os.ReadFile(digestFile)
		if !strings.HasPrefix(string(pushed), "sha256:") {
			t.Fatalf("podman push wrote digest %q", pushed)
		}
		t.Logf("podman pushed %s (the layout's manifest: %s)", pushed, w.manifest)
		h.pulledBack(t, "dev/podman", "v1", string(pushed), w.config.String())

		// And podman pulls it back, anonymously.
		p.run(t, "rmi", "--force", id)
		p.run(t, "pull", "--quiet", "--tls-verify=false", "--signature-policy", p.policy, ref)
		var got []struct {
			ID     string `json:"Id"`
			Digest string
			RootFS struct{ Layers []string }
		}
		unmarshal(t, p.run(t, "image", "inspect", "--format", "json", ref), &got)
		if len(got) != 1 || got[0].ID != w.config.Hex || got[0].Digest != string(pushed) {
			t.Fatalf("podman image inspect %s: %+v, want ID %s and digest %s", ref, got, w.config.Hex, pushed)
		}
		checkDiffIDs(t, got[0].RootFS.Layers, w.diffIDs)
	})

	t.Run("anonymous push refused", func(t *testing.T) {
		img := platformImage(t, "linux", "amd64", types.OCIManifestSchema1, 1<<10)
		out, err := craneAs(h.dockerConfig(t, "", ""), "push", imageTarball(t, img), h.Addr+"/dev/anon:v1")
		wantMsg := "push to dev/anon needs a login: docker login " + h.Addr
		if err == nil || !strings.Contains(out, "UNAUTHORIZED") || !strings.Contains(out, wantMsg) {
			t.Errorf("anonymous crane push: %v, output %q; want a failure with UNAUTHORIZED and %q", err, out, wantMsg)
		}
		// The same refusal as a plain request: 401, a Basic challenge, an
		// errcode body saying how to log in.
		status, header, body := h.request(t, http.MethodPost, "/v2/dev/anon/blobs/uploads/", "", "", nil)
		if status != http.StatusUnauthorized {
			t.Errorf("anonymous upload POST: status %d, want 401: %s", status, body)
		}
		if got := header.Get("WWW-Authenticate"); got != `Basic realm="e2e-hosted"` {
			t.Errorf("anonymous upload POST: WWW-Authenticate %q, want Basic realm=\"e2e-hosted\"", got)
		}
		var errs struct {
			Errors []struct{ Code, Message string }
		}
		if err := json.Unmarshal([]byte(body), &errs); err != nil || len(errs.Errors) != 1 ||
			errs.Errors[0].Code != "UNAUTHORIZED" || !strings.Contains(errs.Errors[0].Message, "docker login "+h.Addr) {
			t.Errorf("anonymous upload POST: body %s, want UNAUTHORIZED saying docker login %s", body, h.Addr)
		}
		if d := h.manifestDigest(t, "dev/anon", "v1"); d != "" {
			t.Errorf("dev/anon:v1 exists (%s) after an anonymous push", d)
		}
		// Anonymous pulls stay allowed (auth.anonymouspull defaults to true).
		if d := h.manifestDigest(t, "dev/crane", "v1"); d == "" {
			t.Error("anonymous HEAD of dev/crane:v1 failed")
		}
	})

	// Last: failed logins slow the address down, and every other step here
	// logs in from the same address.
	t.Run("wrong password", func(t *testing.T) {
		const wrong = "not-the-Pa55word-7e1d"
		status, header, body := h.request(t, http.MethodPost, "/v2/dev/wrong/blobs/uploads/", hostedUser, wrong, nil)
		if status != http.StatusUnauthorized || !strings.HasPrefix(header.Get("WWW-Authenticate"), "Basic ") ||
			!strings.Contains(body, "invalid user name or password") {
			t.Errorf("upload POST with a wrong password: %d %q %s; want 401, a Basic challenge, invalid user name or password",
				status, header.Get("WWW-Authenticate"), body)
		}
		img := platformImage(t, "linux", "amd64", types.OCIManifestSchema1, 1<<10)
		out, err := craneAs(h.dockerConfig(t, hostedUser, wrong), "push", imageTarball(t, img), h.Addr+"/dev/wrong:v1")
		if err == nil || (!strings.Contains(out, "401") && !strings.Contains(out, "UNAUTHORIZED")) {
			t.Errorf("crane push with a wrong password: %v, output %q; want a 401", err, out)
		}
		if d := h.manifestDigest(t, "dev/wrong", "v1"); d != "" {
			t.Errorf("dev/wrong:v1 exists (%s) after a push with a wrong password", d)
		}
		// A failed login line is written before the answer: no wait needed.
		logs := h.Logs.String()
		var failed []string
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, `msg="failed login"`) {
				failed = append(failed, line)
			}
		}
		// One for the plain request, at least one for crane; each names the
		// user. (An anonymous podman pull made none: it is no failed login.)
		if len(failed) < 2 {
			t.Errorf("the log has %d failed logins, want 2 or more:\n%s", len(failed), logs)
		}
		for _, line := range failed {
			if !strings.Contains(line, " user="+hostedUser) {
				t.Errorf("a failed login does not name user=%s: %s", hostedUser, line)
			}
		}
		for _, secret := range []string{wrong, hostedPass,
			base64.StdEncoding.EncodeToString([]byte(hostedUser + ":" + wrong)),
			base64.StdEncoding.EncodeToString([]byte(hostedUser + ":" + hostedPass))} {
			if strings.Contains(logs, secret) {
				t.Errorf("the proxy's log holds a credential (%q)", secret)
			}
		}
	})
}

// distributionFails are the conformance checks the hosted namespace fails,
// by name, each because distribution v3.1.2, whose registry handlers serve
// hosted repositories, fails it on its own (TestConformanceHosted checks that
// against distribution run directly):
//
//   - sha512: distribution addresses content by sha256 only. An upload
//     with ?digest=sha512:... is stored and answered with its sha256 digest
//     (Docker-Content-Digest sha256:..., the suite wants the sha512 one), a
//     blob asked for by its sha512 digest is a 500 "unknown blob", and a
//     manifest pushed by a sha512 digest is refused (400).
//   - non-distributable layers: distribution refuses a layer with urls
//     unless validation.manifests.urls.allow lets them in ("If Allow and
//     Deny are empty, allow nothing"), answering 500 UNKNOWN "invalid URL on
//     layer"; the manifest is not stored, so its tag list, HEAD and GET
//     checks fail too. Such layers are deprecated (image-spec 1.1), and
//     letting any client make the registry point pullers at any URL is a
//     policy this server does not take by default.
var distributionFails = []string{
	"OCI Conformance Test/sha512 blobs/post+put/blob-post-put",
	"OCI Conformance Test/sha512 blobs/chunked single/blob-patch-chunked",
	"OCI Conformance Test/sha512 blobs/stream/blob-patch-stream",
	"OCI Conformance Test/sha512 blobs/mount/blob-post-put",
	"OCI Conformance Test/sha512 blobs/mount/blob-patch-stream",
	"OCI Conformance Test/sha512 blobs/mount/blob-patch-chunked",
	"OCI Conformance Test/sha512 blobs/mount/blob-mount",
	"OCI Conformance Test/sha512 blobs/mount anonymous/blob-post-put",
	"OCI Conformance Test/sha512 blobs/mount anonymous/blob-patch-stream",
	"OCI Conformance Test/sha512 blobs/mount anonymous/blob-patch-chunked",
	"OCI Conformance Test/sha512 blobs/mount anonymous/blob-mount-anonymous",
	"OCI Conformance Test/sha512 blobs/mount missing/blob-mount",
	"OCI Conformance Test/sha512 blobs/chunked multi/blob-patch-chunked",
	"OCI Conformance Test/sha512 blobs/chunked multi and put chunk/blob-patch-chunked",
	"OCI Conformance Test/sha512 blobs/chunked out-of-order/blob-patch-chunked",
	"OCI Conformance Test/sha512 blobs/chunked out-of-order and put chunk/blob-patch-chunked",
	"OCI Conformance Test/sha512 blobs/range requests/blob-post-put",
	"OCI Conformance Test/sha512 blobs/range requests/blob-patch-stream",
	"OCI Conformance Test/sha512 blobs/range requests/blob-patch-chunked",
	"OCI Conformance Test/sha512 blobs/empty/blob-post-put",
	"OCI Conformance Test/sha512 blobs/empty/blob-patch-stream",
	"OCI Conformance Test/sha512 blobs/empty/blob-patch-chunked",
	"OCI Conformance Test/sha512 blobs/empty/blob-head",
	"OCI Conformance Test/sha512 blobs/empty/blob-get",
	"OCI Conformance Test/sha512 blobs/emptyJSON/blob-post-put",
	"OCI Conformance Test/sha512 blobs/emptyJSON/blob-patch-stream",
	"OCI Conformance Test/sha512 blobs/emptyJSON/blob-patch-chunked",
	"OCI Conformance Test/sha512 blobs/emptyJSON/blob-head",
	"OCI Conformance Test/sha512 blobs/emptyJSON/blob-get",
	"OCI Conformance Test/non-distributable-layers/push/manifest-by-digest",
	"OCI Conformance Test/non-distributable-layers/push/manifest-by-tag",
	"OCI Conformance Test/non-distributable-layers/tag-list",
	"OCI Conformance Test/non-distributable-layers/head/manifest-head-by-tag",
	"OCI Conformance Test/non-distributable-layers/head/manifest-head-by-digest",
	"OCI Conformance Test/non-distributable-layers/pull/manifest-by-tag",
	"OCI Conformance Test/non-distributable-layers/pull/manifest-by-digest",
	"OCI Conformance Test/sha512/push/blob-post-put",
	"OCI Conformance Test/sha512/push/blob-patch-stream",
	"OCI Conformance Test/sha512/push/blob-patch-chunked",
	"OCI Conformance Test/sha512/push/manifest-by-digest",
	"OCI Conformance Test/sha512/head/manifest-head-by-digest",
	"OCI Conformance Test/sha512/head/blob-head",
	"OCI Conformance Test/sha512/pull/manifest-by-digest",
	"OCI Conformance Test/sha512/pull/blob-get",
}

// TestConformanceHosted runs the whole OCI conformance suite, all four
// workflows (pull, push, content discovery with the referrers API, content
// management with deletes), against the hosted namespace dev/ with the
// htpasswd user's credentials. The failures must be exactly
// distributionFails; the suite then runs against distribution's registry
// directly, where each of them fails too. (Directly, distribution also fails
// the referrers and OCI-Subject checks, which the hosted wrapper adds.)
func TestConformanceHosted(t *testing.T) {
	h := startHosted(t)
	env := map[string]string{
		"OCI_REPO1": "dev/conformance/repo1",
		"OCI_REPO2": "dev/conformance/repo2",
	}
	withCreds := map[string]string{"OCI_USERNAME": hostedUser, "OCI_PASSWORD": hostedPass}
	for k, v := range env {
		withCreds[k] = v
	}
	res, out := runConformanceResult(t, "http://"+h.Addr, withCreds)
	t.Logf("conformance, hosted dev/ with credentials: %d passed, %d failed, %d skipped or disabled",
		res.Passed, res.Failed, res.Skipped)
	// The report counts results (860 in all); its tree has fewer checks, the
	// leaves, which are sorted into workflows here by name.
	for _, w := range workflowCounts(out) {
		t.Logf("  %-19s %3d checks passed, %2d failed, %2d skipped or disabled", w.name+":", w.passed, w.failed, w.skipped)
	}
	t.Logf("  the report's API section:\n%s", apiSection(out))
	for _, f := range res.Failures {
		t.Logf("  failed: %s", firstLine(f))
	}
	got := failedNames(res)
	if !equalSets(got, distributionFails) {
		t.Errorf("failed tests differ from distribution's own failures:\n  unexpected: %v\n  missing: %v\n%s",
			minus(got, distributionFails), minus(distributionFails, got), out)
	}
	if res.Passed < 700 {
		t.Errorf("only %d checks passed:\n%s", res.Passed, out)
	}
	// The suite's writes were made as the user (a push needs one).
	if !strings.Contains(h.Logs.String(), "method=PUT path=/v2/dev/conformance/repo1/manifests/") ||
		!strings.Contains(h.Logs.String(), "user="+hostedUser) {
		t.Errorf("the access log has no manifest PUT by %s", hostedUser)
	}

	// The same suite against distribution's registry itself.
	ref, _ := runConformanceResult(t, startRegistry(t).URL, env)
	direct := failedNames(ref)
	t.Logf("conformance, distribution v3.1.2 directly: %d passed, %d failed, %d skipped or disabled",
		ref.Passed, ref.Failed, ref.Skipped)
	if m := minus(distributionFails, direct); len(m) > 0 {
		t.Errorf("these checks fail on the hosted namespace but not against distribution directly: %v", m)
	}
	for _, name := range minus(direct, distributionFails) {
		t.Logf("  distribution alone also fails: %s", name)
	}
}

// minus returns the names in a that are not in b.
func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	if len(line) > 200 {
		line = line[:200] + "..."
	}
	return line
}

// apiSection returns the report's "API conformance" lines, one status per
// endpoint.
func apiSection(out string) string {
	_, rest, ok := strings.Cut(out, "\nAPI conformance:\n")
	if !ok {
		return "(none)"
	}
	section, _, _ := strings.Cut(rest, "\n\n")
	return section
}

// workflow is the count of the suite's checks of one workflow.
type workflow struct {
	name                    string
	passed, failed, skipped int
}

// workflowCounts sorts the leaves of the suite's result tree into the four
// workflows of the spec's conformance program by their names: deletes are
// content management, tag lists and referrers content discovery, uploads,
// mounts and manifest PUTs push, the rest (GET, HEAD, ranges, ping) pull.
func workflowCounts(out string) []workflow {
	type node struct {
		name, status string
		depth        int
	}
	var nodes []node
	for _, line := range strings.Split(out, "\n") {
		if m := treeLine.FindStringSubmatch(line); m != nil {
			nodes = append(nodes, node{m[1], m[2], len(line) - len(strings.TrimLeft(line, " "))})
		}
	}
	ws := []workflow{{name: "pull"}, {name: "push"}, {name: "content discovery"}, {name: "content management"}}
	for i, n := range nodes {
		if i+1 < len(nodes) && nodes[i+1].depth > n.depth {
			continue // a group, not a check
		}
		segs := strings.Split(n.name, "/")
		leaf, parent := segs[len(segs)-1], ""
		if len(segs) > 1 {
			parent = segs[len(segs)-2]
		}
		w := &ws[0]
		switch {
		case strings.Contains(leaf, "delete"):
			w = &ws[3]
		case strings.HasPrefix(leaf, "tag-list") || leaf == "tag list" || strings.HasPrefix(leaf, "referrers"):
			w = &ws[2]
		case parent == "push" || leaf == "manifest-put" || strings.HasPrefix(leaf, "blob-post") ||
			strings.HasPrefix(leaf, "blob-patch") || strings.HasPrefix(leaf, "blob-mount"):
			w = &ws[1]
		}
		switch n.status {
		case "Pass":
			w.passed++
		case "FAIL", "Error":
			w.failed++
		default:
			w.skipped++
		}
	}
	return ws
}
