package storage

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestWalkFindsLayerOnlyRepository: a blob pulled by digest alone is linked
// in a repository that holds no manifest; Walk reports that link (else the
// start's reconcile takes the blob for unlinked and deletes it), while
// Repositories, the catalog, still lists only repositories with a manifest.
func TestWalkFindsLayerOnlyRepository(t *testing.T) {
	ctx := context.Background()
	s, err := NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := []byte("a layer pulled by digest")
	d := digest.FromBytes(b)
	f, _ := s.NewSpool()
	_, _ = f.Write(b)
	if err := s.CommitBlob(ctx, f, d); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, repo := range []string{"only/layers", "only/layers/nested"} {
		if err := s.LinkLayer(ctx, repo, d); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := s.Walk(ctx, func(it Item) { got = append(got, fmt.Sprintf("%d %s %s", it.Kind, it.Repo, it.Digest)) }); err != nil {
		t.Fatal(err)
	}
	want := []string{fmt.Sprintf("%d only/layers %s", ItemBlob, d), fmt.Sprintf("%d only/layers/nested %s", ItemBlob, d)}
	if !slices.Equal(got, want) {
		t.Errorf("Walk reported %q, want %q", got, want)
	}
	if repos, err := s.Repositories(ctx); err != nil || len(repos) != 0 {
		t.Errorf("Repositories = %q, %v; want none (no repository holds a manifest)", repos, err)
	}
}
