//go:build e2e

package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ocimirror/proxy/internal/testregistry"
)

// TestProxyMirrorCommand runs the built `proxy mirror` between two
// distribution registries: a linux/amd64 + linux/arm64 + windows/amd64 index
// with a signature arrives under the prefix with the source's digests, the
// index's, every child's and the signature's.
func TestProxyMirrorCommand(t *testing.T) {
	bin := buildProxy(t)
	src, dst := testregistry.Start(t, testregistry.WithRoot(t.TempDir())), testregistry.Start(t, testregistry.WithRoot(t.TempDir()))
	win := platformImage(t, "windows", "amd64", types.OCIManifestSchema1, 2048, 4096)
	idx, amd, arm := multiArch(t, 2048, 4096)
	idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: win,
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "windows", Architecture: "amd64"}}})
	src.PushIndex(t, "team/app:v1", idx)
	idxDigest, _ := idx.Digest()
	idxSize, _ := idx.Size()
	sig, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	sig = mutate.Subject(mutate.MediaType(sig, types.OCIManifestSchema1),
		v1.Descriptor{MediaType: types.OCIImageIndex, Digest: idxDigest, Size: idxSize}).(v1.Image)
	sigDigest, _ := sig.Digest()
	if err := remote.Write(src.Ref(t, "team/app@"+sigDigest.String()), sig); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "mirror", "--from", src.Host, "--insecure", "-d", dst.Host+"/mirror", "team/app:v1")
	cmd.Env = append(cmd.Environ(), "DOCKER_CONFIG="+t.TempDir())
	done := make(chan struct{})
	var out []byte
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("proxy mirror did not finish in 2 minutes")
	}
	if err != nil {
		t.Fatalf("proxy mirror: %v\n%s", err, out)
	}

	got, err := remote.Index(dst.Ref(t, "mirror/team/app:v1"))
	if err != nil {
		t.Fatalf("mirrored index: %v\n%s", err, out)
	}
	if d, _ := got.Digest(); d != idxDigest {
		t.Errorf("index digest %s at the destination, %s at the source", d, idxDigest)
	}
	for _, img := range []v1.Image{amd, arm, win} {
		d, _ := img.Digest()
		child, err := remote.Image(dst.Ref(t, "mirror/team/app@"+d.String()))
		if err != nil {
			t.Errorf("child %s: %v", d, err)
			continue
		}
		layers, _ := child.Layers()
		for _, l := range layers {
			if rc, err := l.Compressed(); err != nil {
				t.Errorf("layer of %s: %v", d, err)
			} else {
				rc.Close()
			}
		}
	}
	ref, _ := name.NewDigest(dst.Host+"/mirror/team/app@"+idxDigest.String(), name.Insecure)
	refs, err := remote.Referrers(ref)
	if err != nil {
		t.Fatal(err)
	}
	im, err := refs.IndexManifest()
	if err != nil || len(im.Manifests) != 1 || im.Manifests[0].Digest != sigDigest {
		t.Errorf("referrers at the destination: %+v, %v; want the signature %s", im, err, sigDigest)
	}
	if !strings.Contains(string(out), "1 tags") && !strings.Contains(string(out), "1 tag") {
		t.Errorf("no summary in the output:\n%s", out)
	}
}
