package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/internal/s3test"
)

// newS3Store opens a store on a fresh versitygw bucket under the prefix /cache.
func newS3Store(t *testing.T) (*Store, *s3test.Server) {
	t.Helper()
	srv := s3test.Start(t)
	s, err := NewS3(context.Background(), srv.Params("/cache"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s, srv
}

// commit spools body and commits it as its digest.
func commit(t *testing.T, s *Store, body []byte) (digest.Digest, error) {
	t.Helper()
	f, err := s.NewSpool()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(body); err != nil {
		t.Fatal(err)
	}
	d := digest.FromBytes(body)
	err = s.CommitBlob(context.Background(), f, d)
	f.Close()
	return d, err
}

func TestS3CommitOpenRange(t *testing.T) {
	ctx := context.Background()
	s, srv := newS3Store(t)
	body := make([]byte, 11<<20+17) // more than one 10 MiB part of the driver's uploads
	_, _ = rand.Read(body)
	d, err := commit(t, s, body)
	if err != nil {
		t.Fatal(err)
	}
	// Exactly the blob is in the bucket: the temporary key was moved, not copied.
	keys := srv.Keys(t, "")
	if want := s3test.BlobKey("/cache", d.String()); len(keys) != 1 || keys[0] != want {
		t.Fatalf("bucket holds %v, want only %s", keys, want)
	}
	rc, info, err := s.OpenBlob(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if info.Size != int64(len(body)) {
		t.Fatalf("size %d, want %d", info.Size, len(body))
	}
	// A Range: seek, then read a piece from the middle.
	off := int64(7<<20 + 3)
	if _, err := rc.Seek(off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4096)
	if _, err := io.ReadFull(rc, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body[off:off+4096]) {
		t.Fatal("range read returned the wrong bytes")
	}
	if _, err := rc.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(all, body) {
		t.Fatalf("full read after a seek back: %d bytes, %v", len(all), err)
	}
}

func TestS3BlobURL(t *testing.T) {
	ctx := context.Background()
	s, _ := newS3Store(t)
	body := []byte("presigned bytes")
	d, err := commit(t, s, body)
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.BlobURL(ctx, http.MethodGet, d)
	if err != nil || u == "" {
		t.Fatalf("BlobURL = %q, %v", u, err)
	}
	if strings.Contains(u, s3test.SecretKey) {
		t.Fatal("the presigned URL contains the secret key")
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("GET presigned URL: %d %q", resp.StatusCode, got)
	}
	// The filesystem cannot redirect.
	fs, err := NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if u, err := fs.BlobURL(ctx, http.MethodGet, d); u != "" || err != nil {
		t.Fatalf("filesystem BlobURL = %q, %v", u, err)
	}
}

// An empty object where a non-empty blob belongs is never served as that blob.
func TestS3EmptyObjectIsNoBlob(t *testing.T) {
	ctx := context.Background()
	s, srv := newS3Store(t)
	d := digest.FromString("not empty")
	srv.Put(t, s3test.BlobKey("/cache", d.String()), nil)
	if _, err := s.StatBlob(ctx, d); !errors.Is(err, ErrNotFound) {
		t.Errorf("StatBlob of an empty object: %v, want ErrNotFound", err)
	}
	if _, _, err := s.OpenBlob(ctx, d); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenBlob of an empty object: %v, want ErrNotFound", err)
	}
	// The empty blob itself is a blob.
	empty, err := commit(t, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.StatBlob(ctx, empty); err != nil || info.Size != 0 {
		t.Errorf("the empty blob: %+v, %v", info, err)
	}
}

// shortDriver loses the last byte of every write, as a broken backend would.
type shortDriver struct{ driver.StorageDriver }

func (d shortDriver) Writer(ctx context.Context, path string, append bool) (driver.FileWriter, error) {
	w, err := d.StorageDriver.Writer(ctx, path, append)
	return shortWriter{w}, err
}

type shortWriter struct{ driver.FileWriter }

func (w shortWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	_, err := w.FileWriter.Write(p[:len(p)-1])
	return len(p), err
}

// An upload that reaches the backend short is not moved into place, and its
// temporary key is removed.
func TestS3ShortUploadNotCommitted(t *testing.T) {
	ctx := context.Background()
	s, srv := newS3Store(t)
	short, err := New(shortDriver{s.Driver()}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d, err := commit(t, short, []byte("a blob the backend truncates"))
	if err == nil || !strings.Contains(err.Error(), "holds") {
		t.Fatalf("commit of a truncated upload: %v, want a size error", err)
	}
	if keys := srv.Keys(t, ""); len(keys) != 0 {
		t.Fatalf("bucket holds %v after a failed commit", keys)
	}
	if _, err := s.StatBlob(ctx, d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("StatBlob after a failed commit: %v", err)
	}
}

func TestS3SweepTemp(t *testing.T) {
	ctx := context.Background()
	s, srv := newS3Store(t)
	srv.Put(t, "cache/_proxy/spool/tmp-0123", []byte("left by a crash"))
	if n, err := s.SweepTemp(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("a fresh temporary key was swept: %d, %v", n, err)
	}
	if n, err := s.SweepTemp(ctx, 0); err != nil || n != 1 {
		t.Fatalf("SweepTemp = %d, %v; want 1", n, err)
	}
	if keys := srv.Keys(t, ""); len(keys) != 0 {
		t.Fatalf("bucket holds %v after the sweep", keys)
	}
}

func TestS3OpenErrors(t *testing.T) {
	srv := s3test.Start(t)
	p := srv.Params("/")
	p["bucket"] = "no-such-bucket"
	_, err := NewS3(context.Background(), p, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "no-such-bucket") {
		t.Fatalf("open of a missing bucket: %v", err)
	}
	p = srv.Params("/")
	p["secretkey"] = "wrong-" + s3test.SecretKey
	_, err = NewS3(context.Background(), p, t.TempDir())
	if err == nil {
		t.Fatal("open with a wrong secret key succeeded")
	}
	if strings.Contains(err.Error(), s3test.SecretKey) {
		t.Fatalf("error reveals the secret key: %v", err)
	}
}

func TestRedact(t *testing.T) {
	err := redact(errors.New("bad key s3cr3t in request"), map[string]any{"secretkey": "s3cr3t"})
	if err.Error() != "bad key **** in request" {
		t.Fatalf("redact = %q", err)
	}
}

// A manifest whose stored bytes do not hash to its digest is not returned.
func TestS3DamagedManifest(t *testing.T) {
	ctx := context.Background()
	s, srv := newS3Store(t)
	body := []byte(`{"schemaVersion":2,"layers":[]}`)
	d := digest.FromBytes(body)
	if err := s.PutManifest(ctx, "lib/app", d, body); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetManifest(ctx, "lib/app", d); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("GetManifest = %q, %v", got, err)
	}
	srv.Put(t, s3test.BlobKey("/cache", d.String()), body[:10])
	if _, err := s.GetManifest(ctx, "lib/app", d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetManifest of a truncated object: %v, want ErrNotFound", err)
	}
}
