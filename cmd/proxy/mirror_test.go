package main

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ocimirror/proxy/internal/testregistry"
	"github.com/ocimirror/proxy/mirror"
)

// noDockerConfig points DOCKER_CONFIG at an empty directory, so that a test
// never reads the credentials of whoever runs it. It returns the directory.
func noDockerConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	return dir
}

// runMirrorArgs runs `proxy mirror args...` in-process.
func runMirrorArgs(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"mirror"}, args...), &out, &errb)
	t.Logf("proxy mirror %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	return code, out.String(), errb.String()
}

// digestAt returns the digest of ref on reg, "" when it is not there.
func digestAt(t *testing.T, reg *testregistry.Registry, ref string) string {
	t.Helper()
	d, err := remote.Head(reg.Ref(t, ref))
	if err != nil {
		return ""
	}
	return d.Digest.String()
}

// threePlatforms pushes a linux/amd64 + linux/arm64 + windows/amd64 index as
// repoTag on reg, and a signature of it.
func threePlatforms(t *testing.T, reg *testregistry.Registry, repoTag string) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}, {OS: "windows", Architecture: "amd64"}} {
		img, err := random.Image(2048, 2)
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	reg.PushIndex(t, repoTag, idx)
	h, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := random.Image(100, 1)
	if err != nil {
		t.Fatal(err)
	}
	sig = mutate.Subject(mutate.MediaType(sig, types.OCIManifestSchema1), v1.Descriptor{Digest: h, Size: mustSize(t, idx), MediaType: types.OCIImageIndex}).(v1.Image)
	repo, _, _ := strings.Cut(repoTag, ":")
	sh, err := sig.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(reg.Ref(t, repo+"@"+sh.String()), sig); err != nil {
		t.Fatal(err)
	}
	return idx
}

func mustSize(t *testing.T, idx v1.ImageIndex) int64 {
	t.Helper()
	n, err := idx.Size()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mustDigest(t *testing.T, m interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	h, err := m.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// TestMirrorAllTags mirrors every tag of a repository: the index keeps its
// digest, the single image too, the signature arrives, and the source's
// referrers tag is not copied as a tag of its own.
func TestMirrorAllTags(t *testing.T) {
	noDockerConfig(t)
	src, dst := testregistry.Start(t), testregistry.Start(t)
	idx := threePlatforms(t, src, "team/app:v1")
	img := src.PushRandom(t, "team/app:v2", 1024, 1)
	code, out, _ := runMirrorArgs(t, "--from", src.Host, "--insecure", "-d", dst.Host+"/mirror", "team/app")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	if got := digestAt(t, dst, "mirror/team/app:v1"); got != mustDigest(t, idx) {
		t.Errorf("mirror/team/app:v1 is %q, want the source index %s", got, mustDigest(t, idx))
	}
	if got := digestAt(t, dst, "mirror/team/app:v2"); got != mustDigest(t, img) {
		t.Errorf("mirror/team/app:v2 is %q, want %s", got, mustDigest(t, img))
	}
	h, _ := idx.Digest()
	d, err := name.NewDigest(dst.Host+"/mirror/team/app@"+h.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	refs, err := remote.Referrers(d)
	if err != nil {
		t.Fatal(err)
	}
	if im, err := refs.IndexManifest(); err != nil || len(im.Manifests) != 1 {
		t.Errorf("referrers of the index at the destination: %v, %v; want the signature", im, err)
	}
	if !strings.Contains(out, "2 tags (2 copied, 0 up to date)") || strings.Contains(out, "sha256-"+h.Hex+" ") {
		t.Errorf("summary does not say 2 tags copied, or the referrers tag was copied as a tag:\n%s", out)
	}

	// Again: everything is up to date, nothing is uploaded.
	uploads := dst.Count(http.MethodPatch, "blobs/uploads")
	code, out, _ = runMirrorArgs(t, "--from", src.Host, "--insecure", "-d", dst.Host+"/mirror", "team/app")
	if code != exitOK || !strings.Contains(out, "(0 copied, 2 up to date)") || dst.Count(http.MethodPatch, "blobs/uploads") != uploads {
		t.Errorf("second run: exit %d, %d uploads:\n%s", code, dst.Count(http.MethodPatch, "blobs/uploads")-uploads, out)
	}
}

// TestMirrorOneTagAndPlatforms mirrors one tag, filtered to two platforms.
func TestMirrorOneTagAndPlatforms(t *testing.T) {
	noDockerConfig(t)
	src, dst := testregistry.Start(t), testregistry.Start(t)
	threePlatforms(t, src, "team/app:v1")
	src.PushRandom(t, "team/app:v2", 1024, 1)
	code, _, _ := runMirrorArgs(t, "--from", src.Host, "--insecure", "-d", dst.Host, "--platform", "linux/amd64,linux/arm64", "team/app:v1")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	if digestAt(t, dst, "team/app:v2") != "" {
		t.Error("v2 was copied too")
	}
	got, err := remote.Index(dst.Ref(t, "team/app:v1"))
	if err != nil {
		t.Fatal(err)
	}
	im, err := got.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 {
		t.Errorf("destination index has %d platforms, want 2", len(im.Manifests))
	}
	for _, m := range im.Manifests {
		if m.Platform == nil || m.Platform.OS != "linux" {
			t.Errorf("destination index has %v", m.Platform)
		}
	}

	// A platform no tag has: skipped when copying every tag (v2, without a
	// platform in its config, is copied as it is), a failure when named.
	code, out, _ := runMirrorArgs(t, "--from", src.Host, "--insecure", "-d", dst.Host+"/s390x", "--platform", "linux/s390x", "team/app")
	if code != exitOK || !strings.Contains(out, "skipped "+src.Host+"/team/app:v1: no manifest for the requested platforms linux/s390x") ||
		!strings.Contains(out, "1 without the platforms") || digestAt(t, dst, "s390x/team/app:v1") != "" {
		t.Errorf("every tag for linux/s390x: exit %d, want 0 with v1 skipped", code)
	}
	if code, _, _ := runMirrorArgs(t, "--from", src.Host, "--insecure", "-d", dst.Host+"/s390x", "--platform", "linux/s390x", "team/app:v1"); code != exitFail {
		t.Errorf("team/app:v1 for linux/s390x: exit %d, want %d", code, exitFail)
	}
}

// TestMirrorProgressLines: on a terminal, the line of the copy in flight is
// redrawn in place and replaced by its result line.
func TestMirrorProgressLines(t *testing.T) {
	var out bytes.Buffer
	m := &mirrorRun{out: &out, tty: true}
	m.progress(mirror.Progress{Src: "r/a:v1", Result: mirror.Result{Bytes: 3 << 20, Blobs: 2, Skipped: 1}})
	m.progress(mirror.Progress{Src: "r/a:v1", Result: mirror.Result{Bytes: 5 << 20, Blobs: 3, Skipped: 1}})
	m.progress(mirror.Progress{Src: "r/a:v1", Done: true})
	m.line("copied r/a:v1\n")
	want := "\r\x1b[Kr/a:v1  3.0 MiB  2 blobs, 1 skipped, 0 mounted" +
		"\r\x1b[Kr/a:v1  5.0 MiB  3 blobs, 1 skipped, 0 mounted" +
		"\r\x1b[Kcopied r/a:v1\n"
	if out.String() != want {
		t.Errorf("terminal output %q, want %q", out.String(), want)
	}
	out.Reset()
	m.tty = false
	m.line("copied r/a:v1\n")
	if out.String() != "copied r/a:v1\n" {
		t.Errorf("plain output %q", out.String())
	}
}

// TestMirrorDryRun prints the plan and copies nothing.
func TestMirrorDryRun(t *testing.T) {
	noDockerConfig(t)
	src, dst := testregistry.Start(t), testregistry.Start(t)
	idx := threePlatforms(t, src, "team/app:v1")
	src.PushRandom(t, "team/app:v2", 1024, 1)
	code, out, _ := runMirrorArgs(t, "--from", src.Host, "--insecure", "-d", dst.Host+"/m", "--dry-run", "team/app")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"would copy " + src.Host + "/team/app:v1 sha256:" + strings.TrimPrefix(mustDigest(t, idx), "sha256:")[:12] + " -> " + dst.Host + "/m/team/app:v1 (new)",
		"-> " + dst.Host + "/m/team/app:v2 (new)",
		"2 tags: 2 new, 0 changed, 0 up to date; nothing copied",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q", want)
		}
	}
	for _, m := range []string{http.MethodPost, http.MethodPatch, http.MethodPut} {
		if n := dst.Count(m, "blobs/uploads") + dst.Count(m, "manifests"); n != 0 {
			t.Errorf("dry run sent %d %s requests to the destination", n, m)
		}
	}
}

// TestMirrorBadArguments exits 2 for what cannot be run.
func TestMirrorBadArguments(t *testing.T) {
	noDockerConfig(t)
	for _, args := range [][]string{
		{"team/app"},                 // no -d
		{"-d", "mirror", "team/app"}, // no host in -d
		{"-d", "127.0.0.1:5000"},     // no image
		{"-d", "127.0.0.1:5000", "--platform", "linux", "a/b"}, // no arch
		{"-d", "127.0.0.1:5000", "-j", "0", "a/b"},
		{"-d", "127.0.0.1:5000", "ghcr.io/owner/app"}, // a registry in IMAGE
		{"-d", "127.0.0.1:5000", "team/app:"},
		{"-d", "127.0.0.1:5000", "Team/App"},
		{"-d", "127.0.0.1:5000", "team/app@sha256:abc"},
		{"-d", "127.0.0.1:5000", "--from", "a/b", "team/app"},
		{"-d", "127.0.0.1:5000", "--no-such-flag", "team/app"},
	} {
		if code, _, errOut := runMirrorArgs(t, args...); code != exitConfig || errOut == "" {
			t.Errorf("proxy mirror %v: exit %d, want %d with a reason", args, code, exitConfig)
		}
	}
}

// TestMirrorMissingImage exits 1 naming what failed, after copying the rest.
func TestMirrorMissingImage(t *testing.T) {
	noDockerConfig(t)
	src, dst := testregistry.Start(t), testregistry.Start(t)
	img := src.PushRandom(t, "team/app:v1", 1024, 1)
	code, out, errOut := runMirrorArgs(t, "--from", src.Host, "--insecure", "-d", dst.Host, "team/nope:v1", "team/app:v1", "team/gone")
	if code != exitFail {
		t.Errorf("exit %d, want %d", code, exitFail)
	}
	if !strings.Contains(errOut, "failed: team/nope:v1, team/gone") || !strings.Contains(errOut, "MANIFEST_UNKNOWN") {
		t.Errorf("stderr does not name the missing images and why:\n%s", errOut)
	}
	if digestAt(t, dst, "team/app:v1") != mustDigest(t, img) || !strings.Contains(out, "2 failed") {
		t.Error("the image that exists was not copied, or the summary does not count the failures")
	}
}

// TestMirrorNaming: DEST/prefix/namespace/name, library/ for Docker Hub's
// single names.
func TestMirrorNaming(t *testing.T) {
	for _, tc := range []struct {
		args          []string
		from, dst, rf string
	}{
		{[]string{"-d", "docker.example.com/mirror", "hello-world"}, "registry-1.docker.io/library/hello-world", "docker.example.com/mirror/library/hello-world", ""},
		{[]string{"-d", "docker.example.com/mirror/", "library/alpine:3.20"}, "registry-1.docker.io/library/alpine", "docker.example.com/mirror/library/alpine", "3.20"},
		{[]string{"--from", "docker.io", "-d", "https://docker.example.com", "bitnami/redis@sha256:" + strings.Repeat("a", 64)}, "registry-1.docker.io/bitnami/redis", "docker.example.com/bitnami/redis", "sha256:" + strings.Repeat("a", 64)},
		{[]string{"--from", "quay.io", "-d", "localhost:5000/a/b", "alpine:edge"}, "quay.io/alpine", "localhost:5000/a/b/alpine", "edge"},
	} {
		var errb bytes.Buffer
		a, code := parseMirrorArgs(tc.args, &errb)
		if a == nil {
			t.Errorf("%v: exit %d: %s", tc.args, code, errb.String())
			continue
		}
		img := a.images[0]
		if from := a.from + "/" + img.path; from != tc.from {
			t.Errorf("%v: source %s, want %s", tc.args, from, tc.from)
		}
		if dst := a.dest + "/" + join(a.prefix, img.path); dst != tc.dst {
			t.Errorf("%v: destination %s, want %s", tc.args, dst, tc.dst)
		}
		if img.ref != tc.rf {
			t.Errorf("%v: reference %q, want %q", tc.args, img.ref, tc.rf)
		}
	}
}

// TestMirrorCredentials takes the destination's credentials from docker's
// config.json: with them the copy works, without them it fails.
func TestMirrorCredentials(t *testing.T) {
	src := testregistry.Start(t)
	dst := testregistry.Start(t, testregistry.WithTokenAuth("bob", "hunter2"))
	src.PushRandom(t, "team/app:v1", 1024, 1)

	dir := noDockerConfig(t)
	if code, _, _ := runMirrorArgs(t, "--from", src.Host, "--insecure", "-d", dst.Host, "team/app:v1"); code != exitFail {
		t.Errorf("without credentials: exit %d, want %d", code, exitFail)
	}
	cfg := `{"auths":{"` + dst.Host + `":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("bob:hunter2")) + `"}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runMirrorArgs(t, "--from", src.Host, "--insecure", "-d", dst.Host, "team/app:v1")
	if code != exitOK {
		t.Errorf("with credentials in config.json: exit %d", code)
	}
	if strings.Contains(out+errOut, "hunter2") {
		t.Error("the password was printed")
	}
}
