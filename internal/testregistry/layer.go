package testregistry

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
)

// PushLayer pushes an image of one layer holding data as repoTag and
// returns the layer's digest. Unlike PushRandom it costs no compression, so
// large layers are cheap (under the race detector too).
func (r *Registry) PushLayer(t testing.TB, repoTag string, data []byte) digest.Digest {
	t.Helper()
	layer := static.NewLayer(data, types.OCILayer)
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	r.Push(t, repoTag, img)
	d, err := layer.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return digest.Digest(d.String())
}
