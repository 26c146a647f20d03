package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestSpoolCleanedAtStart(t *testing.T) {
	root := t.TempDir()
	s, err := NewFilesystem(root)
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.NewSpool()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("half a blob")
	f.Close()
	if _, err := NewFilesystem(root); err != nil { // a restart after a crash
		t.Fatal(err)
	}
	if _, err := os.Stat(f.Name()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("spool file survived a restart: %v", err)
	}
}

func TestCommitBlobAndManifests(t *testing.T) {
	ctx := context.Background()
	s, err := NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("blob content")
	d := digest.FromBytes(content)
	if _, err := s.StatBlob(ctx, d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty store: %v", err)
	}
	f, _ := s.NewSpool()
	_, _ = f.Write(content)
	if err := s.CommitBlob(ctx, f, d); err != nil {
		t.Fatal(err)
	}
	// The open spool stays readable after the commit renamed it.
	buf := make([]byte, len(content))
	if _, err := f.ReadAt(buf, 0); err != nil || string(buf) != string(content) {
		t.Fatalf("read after commit: %v %q", err, buf)
	}
	f.Close()
	rc, info, err := s.OpenBlob(ctx, d)
	if err != nil || info.Size != int64(len(content)) {
		t.Fatalf("open: %v %+v", err, info)
	}
	if _, ok := rc.(*os.File); !ok {
		t.Fatalf("filesystem blob reader is %T, want *os.File (sendfile)", rc)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != string(content) {
		t.Fatalf("content %q", got)
	}

	m := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
	md := digest.FromBytes(m)
	if err := s.PutManifest(ctx, "a/b", md, m); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, "a/b", "v1", md); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetManifest(ctx, "other", md); !errors.Is(err, ErrNotFound) {
		t.Fatalf("manifest visible in another repository: %v", err)
	}
	if got, err := s.ResolveTag(ctx, "a/b", "v1"); err != nil || got != md {
		t.Fatalf("resolve: %v %s", err, got)
	}
	repos, _ := s.Repositories(ctx)
	tags, _ := s.Tags(ctx, "a/b")
	if len(repos) != 1 || repos[0] != "a/b" || len(tags) != 1 || tags[0] != "v1" {
		t.Fatalf("repos %v tags %v", repos, tags)
	}
	if _, err := os.Stat(filepath.Join(s.spoolDir)); err != nil {
		t.Fatal(err)
	}
}

func TestManifestMediaType(t *testing.T) {
	tests := map[string]string{
		`{"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}`: MediaTypeDockerManifest,
		`{"schemaVersion":2,"manifests":[]}`:                                   "application/vnd.oci.image.index.v1+json",
		`{"schemaVersion":2,"config":{},"layers":[]}`:                          "application/vnd.oci.image.manifest.v1+json",
		`{"schemaVersion":1,"signatures":[]}`:                                  MediaTypeDockerSchema1,
		`not json`:                                                             "",
	}
	for body, want := range tests {
		if got := ManifestMediaType([]byte(body)); got != want {
			t.Errorf("ManifestMediaType(%s) = %q, want %q", body, got, want)
		}
	}
}

// TestWalkSkipsHalfDeleted: what a deletion killed half way leaves (a link's
// directory without its file, a tag without its current link, content without
// its data) is not reported as an item, so the index never gets an entry for
// content the store would not serve.
func TestWalkSkipsHalfDeleted(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := NewFilesystem(root)
	if err != nil {
		t.Fatal(err)
	}
	m := []byte(`{"schemaVersion":2}`)
	md := digest.FromBytes(m)
	layer, gone := []byte("layer"), []byte("content gone")
	for _, b := range [][]byte{layer, gone} {
		f, _ := s.NewSpool()
		_, _ = f.Write(b)
		if err := s.CommitBlob(ctx, f, digest.FromBytes(b)); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := s.LinkLayer(ctx, "r", digest.FromBytes(b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutManifest(ctx, "r", md, m); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"kept", "half"} {
		if err := s.Tag(ctx, "r", tag, md); err != nil {
			t.Fatal(err)
		}
	}
	v2 := filepath.Join(root, "docker", "registry", "v2")
	layers := filepath.Join(v2, "repositories", "r", "_layers", "sha256")
	for _, p := range []string{
		filepath.Join(layers, digest.FromBytes(layer).Encoded(), "link"),
		filepath.Join(v2, "repositories", "r", "_manifests", "revisions", "sha256", md.Encoded(), "link"),
		filepath.Join(v2, "repositories", "r", "_manifests", "tags", "half", "current"),
		filepath.Join(v2, "blobs", "sha256", digest.FromBytes(gone).Encoded()[:2], digest.FromBytes(gone).Encoded(), "data"),
	} {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := s.Walk(ctx, func(it Item) { got = append(got, fmt.Sprintf("%d %s %s %s", it.Kind, it.Repo, it.Tag, it.Digest)) }); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%d r kept %s", ItemTag, md); len(got) != 1 || got[0] != want {
		t.Errorf("Walk reported %q, want only %q", got, want)
	}
}
