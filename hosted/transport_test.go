package hosted

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// The in-process transport carries a whole push and pull, chunked uploads
// and all, without a listener.
func TestTransport(t *testing.T) {
	rg, err := New(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer rg.Close()
	ref, _ := name.ParseReference("hosted.local/dev/app:v1", name.Insecure)
	img, _ := random.Image(3<<20, 2)
	if err := remote.Write(ref, img, remote.WithTransport(rg.Transport())); err != nil {
		t.Fatalf("push: %v", err)
	}
	got, err := remote.Image(ref, remote.WithTransport(rg.Transport()))
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if err := validate.Image(got); err != nil { // reads and verifies every blob
		t.Fatalf("validate: %v", err)
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Fatalf("digest %s, want %s", d, want)
	}
}
