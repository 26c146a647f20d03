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

	"github.com/ocimirror/proxy/internal/azuretest"
	"github.com/ocimirror/proxy/internal/gcstest"
	"github.com/ocimirror/proxy/internal/objtest"
	"github.com/ocimirror/proxy/internal/s3test"
)

// TestS3: the object store on versitygw.
func TestS3(t *testing.T) { objtest.Run(t, s3test.Backend, nil, objectStoreCases) }

// TestGCS: the object store on fake-gcs-server.
func TestGCS(t *testing.T) { objtest.Run(t, gcstest.Backend, nil, objectStoreCases) }

// TestAzure: the object store on Azurite, over http and (for SAS URLs, which
// say https) over https.
func TestAzure(t *testing.T) {
	objtest.Run(t, azuretest.Backend, azuretest.BackendTLS, objectStoreCases)
}

// objectStoreCases are the store's tests on every object storage driver.
var objectStoreCases = []objtest.Case{
	{Name: "CommitOpenRange", Run: testCommitOpenRange},
	{Name: "EmptyObjectIsNoBlob", Run: testEmptyObjectIsNoBlob},
	{Name: "ShortUploadNotCommitted", Run: testShortUploadNotCommitted},
	{Name: "SweepTemp", Run: testSweepTemp},
	{Name: "OpenErrors", Run: testOpenErrors},
	{Name: "DamagedManifest", Run: testDamagedManifest},
	{Name: "BlobURL", Run: testBlobURL, Redirect: true},
}

// newObjectStore opens a store on b's bucket with params.
func newObjectStore(t *testing.T, b objtest.Backend, params map[string]any) *Store {
	t.Helper()
	s, err := NewObjectStore(b.Context(context.Background()), b.Driver(), params, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
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

// testCommitOpenRange: a blob larger than one part, chunk or block of the
// driver's uploads (s3: 10 MiB parts; azure: 4 MiB blocks; gcs: chunks of
// the 256 KiB chunksize given here, a resumable upload) is committed
// whole, then read with a seek.
func testCommitOpenRange(t *testing.T, b objtest.Backend, root string) {
	ctx := context.Background()
	p := b.Params(root)
	if b.Driver() == "gcs" {
		p["chunksize"] = 256 << 10
	}
	s := newObjectStore(t, b, p)
	body := make([]byte, 11<<20+17)
	_, _ = rand.Read(body)
	d, err := commit(t, s, body)
	if err != nil {
		t.Fatal(err)
	}
	// Exactly the blob is in the bucket: the temporary key was moved, not copied.
	keys := b.Keys(t, root[1:])
	if want := objtest.BlobKey(root, d.String()); len(keys) != 1 || keys[0] != want {
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

// testBlobURL: the driver's redirect URL points at the emulator and serves
// the blob.
func testBlobURL(t *testing.T, b objtest.Backend, root string) {
	ctx := context.Background()
	s := newObjectStore(t, b, b.Params(root))
	body := []byte("presigned bytes")
	d, err := commit(t, s, body)
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.BlobURL(ctx, http.MethodGet, d)
	if err != nil || !objtest.PointsAt(u, b) {
		t.Fatalf("BlobURL = %q, %v; want a URL under %s", u, err, b.URL())
	}
	if strings.Contains(u, b.Secret()) {
		t.Fatal("the redirect URL contains the secret")
	}
	resp, err := b.Client().Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("GET redirect URL: %d %q", resp.StatusCode, got)
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

// testEmptyObjectIsNoBlob: an empty object where a non-empty blob belongs is
// never served as that blob.
func testEmptyObjectIsNoBlob(t *testing.T, b objtest.Backend, root string) {
	ctx := context.Background()
	s := newObjectStore(t, b, b.Params(root))
	d := digest.FromString("not empty")
	b.Put(t, objtest.BlobKey(root, d.String()), nil)
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

// testShortUploadNotCommitted: an upload that reaches the backend short is
// not moved into place, and its temporary key is removed.
func testShortUploadNotCommitted(t *testing.T, b objtest.Backend, root string) {
	ctx := context.Background()
	s := newObjectStore(t, b, b.Params(root))
	short, err := New(shortDriver{s.Driver()}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d, err := commit(t, short, []byte("a blob the backend truncates"))
	if err == nil || !strings.Contains(err.Error(), "holds") {
		t.Fatalf("commit of a truncated upload: %v, want a size error", err)
	}
	if keys := b.Keys(t, root[1:]); len(keys) != 0 {
		t.Fatalf("bucket holds %v after a failed commit", keys)
	}
	if _, err := s.StatBlob(ctx, d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("StatBlob after a failed commit: %v", err)
	}
}

// testSweepTemp: temporary keys older than the age are removed.
func testSweepTemp(t *testing.T, b objtest.Backend, root string) {
	ctx := context.Background()
	s := newObjectStore(t, b, b.Params(root))
	b.Put(t, root[1:]+"/_proxy/spool/tmp-0123", []byte("left by a crash"))
	if n, err := s.SweepTemp(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("a fresh temporary key was swept: %d, %v", n, err)
	}
	if n, err := s.SweepTemp(ctx, 0); err != nil || n != 1 {
		t.Fatalf("SweepTemp = %d, %v; want 1", n, err)
	}
	if keys := b.Keys(t, root[1:]); len(keys) != 0 {
		t.Fatalf("bucket holds %v after the sweep", keys)
	}
}

// testOpenErrors: a missing bucket is named; a wrong secret (where the
// emulator checks credentials) fails the open without revealing it.
func testOpenErrors(t *testing.T, b objtest.Backend, root string) {
	ctx := b.Context(context.Background())
	p := b.Params(root)
	p[objtest.BucketParam(b.Driver())] = "no-such-bucket"
	_, err := NewObjectStore(ctx, b.Driver(), p, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "no-such-bucket") {
		t.Fatalf("open of a missing bucket: %v", err)
	}
	a, ok := b.(objtest.Authenticating)
	if !ok {
		return
	}
	p = b.Params(root)
	a.BreakSecret(p)
	_, err = NewObjectStore(ctx, b.Driver(), p, t.TempDir())
	if err == nil {
		t.Fatal("open with a wrong secret succeeded")
	}
	if strings.Contains(err.Error(), b.Secret()) {
		t.Fatalf("error reveals the secret: %v", err)
	}
}

// testDamagedManifest: a manifest whose stored bytes do not hash to its
// digest is not returned.
func testDamagedManifest(t *testing.T, b objtest.Backend, root string) {
	ctx := context.Background()
	s := newObjectStore(t, b, b.Params(root))
	body := []byte(`{"schemaVersion":2,"layers":[]}`)
	d := digest.FromBytes(body)
	if err := s.PutManifest(ctx, "lib/app", d, body); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetManifest(ctx, "lib/app", d); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("GetManifest = %q, %v", got, err)
	}
	b.Put(t, objtest.BlobKey(root, d.String()), body[:10])
	if _, err := s.GetManifest(ctx, "lib/app", d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetManifest of a truncated object: %v, want ErrNotFound", err)
	}
}
