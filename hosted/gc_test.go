package hosted

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestCollect(t *testing.T) {
	root := t.TempDir()
	rg, err := New(context.Background(), root, WithDelete(true))
	if err != nil {
		t.Fatal(err)
	}
	_, host := serve(t, rg)
	keep := pushRandom(t, host, "dev/keep:1")
	drop := pushRandom(t, host, "dev/drop:1")
	orphan := bytes.Repeat([]byte("orphan"), 1000)
	uploadBlob(t, "http://"+host, "dev/keep", orphan)
	dropDigest, _ := drop.Digest()
	if resp := do(t, http.MethodDelete, "http://"+host+"/v2/dev/drop/manifests/"+dropDigest.String(), "", nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	// drop's manifest, config and 3 layers, and the orphan, are unreferenced.
	const unreferenced = 1 + 1 + 3 + 1
	ctx := context.Background()
	now := time.Now()

	young, err := Collect(ctx, root, time.Hour, false, now)
	if err != nil || young.Swept != 0 || young.Young != unreferenced {
		t.Fatalf("within the grace period: %+v, %v", young, err)
	}
	dry, err := Collect(ctx, root, 0, true, now)
	if err != nil || dry.Swept != unreferenced || dry.Manifests != 1 || dry.Bytes < int64(len(orphan)) {
		t.Fatalf("dry run: %+v, %v", dry, err)
	}
	again, _ := Collect(ctx, root, 0, true, now)
	if again.Swept != unreferenced {
		t.Fatalf("the dry run deleted something: %+v", again)
	}
	done, err := Collect(ctx, root, 0, false, now)
	if err != nil || done.Swept != unreferenced {
		t.Fatalf("collect: %+v, %v", done, err)
	}
	after, _ := Collect(ctx, root, 0, true, now)
	if after.Swept != 0 || after.Blobs != done.Blobs-unreferenced {
		t.Fatalf("after: %+v", after)
	}

	// What is kept still pulls whole; the orphan is gone from its repository.
	// (A fresh process: a serving one caches blob descriptors, which is why
	// proxy gc refuses to run beside proxy serve.)
	rg2, err := New(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	_, host = serve(t, rg2)
	ref, _ := name.ParseReference(host+"/dev/keep:1", name.Insecure)
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := keep.Digest()
	if d, _ := img.Digest(); d != want {
		t.Fatalf("kept image %s, want %s", d, want)
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("kept layer: %v", err)
		}
		rc.Close()
	}
	orphanDigest := "sha256:" + sha256hex(orphan)
	if resp := do(t, http.MethodHead, "http://"+host+"/v2/dev/keep/blobs/"+orphanDigest, "", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("orphan blob after gc: %d", resp.StatusCode)
	}
}
