// Package storage is the proxy's content store: blobs by digest, and per-repository
// links for layers, manifest revisions and tags, kept in distribution's on-disk layout
// on one of distribution's storage drivers.
//
// Nothing unverified is ever visible here: blobs are written to a spool file first
// and moved into place only by Commit, after the caller checked the digest.
package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/opencontainers/go-digest"
)

// ErrNotFound reports content the store does not hold.
var ErrNotFound = errors.New("not found in local storage")

// ErrUnavailable wraps a storage backend's failure to answer (a disk error,
// an object store out of reach), as opposed to content it does not hold.
var ErrUnavailable = errors.New("storage backend unavailable")

// Store holds cached content on a storage driver.
type Store struct {
	d driver.StorageDriver
	// spoolDir is a local directory for fills in progress. When spoolInRoot is set it
	// is the driver's own /_proxy/spool, and a commit is a rename.
	spoolDir    string
	spoolInRoot bool
}

// NewFilesystem opens (creating it if needed) a store rooted at dir on the local
// filesystem, and removes spool files a crash left behind.
func NewFilesystem(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("storage root %q: %w", dir, err)
	}
	s := &Store{
		d:           filesystem.New(filesystem.DriverParameters{RootDirectory: abs, MaxThreads: 100}),
		spoolDir:    filepath.Join(abs, filepath.FromSlash(spoolRoot)),
		spoolInRoot: true,
	}
	return s, s.resetSpool()
}

// New returns a store on any storage driver; fills are spooled in the local
// directory spoolDir and uploaded on commit. With spoolDir "" the store can
// read and link but not fill (a read view, such as hosted's).
func New(d driver.StorageDriver, spoolDir string) (*Store, error) {
	s := &Store{d: d, spoolDir: spoolDir}
	if spoolDir == "" {
		return s, nil
	}
	return s, s.resetSpool()
}

// Driver returns the underlying storage driver.
func (s *Store) Driver() driver.StorageDriver { return s.d }

func (s *Store) resetSpool() error {
	if err := os.RemoveAll(s.spoolDir); err != nil {
		return fmt.Errorf("clean spool %s: %w", s.spoolDir, err)
	}
	if err := os.MkdirAll(s.spoolDir, 0o750); err != nil {
		return fmt.Errorf("create spool %s: %w", s.spoolDir, err)
	}
	return nil
}

// NewSpool creates an empty spool file for a fill in progress. The caller commits it
// with CommitBlob or removes it with DiscardSpool.
func (s *Store) NewSpool() (*os.File, error) {
	if s.spoolDir == "" {
		return nil, errors.New("storage: this store has no spool directory")
	}
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	name := filepath.Join(s.spoolDir, hex.EncodeToString(b[:]))
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, fmt.Errorf("create spool file: %w", err)
	}
	return f, nil
}

// DiscardSpool removes a spool file that will not be committed.
func (s *Store) DiscardSpool(f *os.File) {
	_ = os.Remove(f.Name())
}

// CommitBlob syncs a verified spool file and moves it into place as the blob dgst.
// The file stays open for its readers; only its name changes.
func (s *Store) CommitBlob(ctx context.Context, spool *os.File, dgst digest.Digest) error {
	dst := blobDataPath(dgst)
	if s.spoolInRoot {
		// Durable before visible: after a power cut the blob is whole or absent.
		if err := spool.Sync(); err != nil {
			return fmt.Errorf("commit blob %s: sync: %w", dgst, err)
		}
		src := spoolRoot + "/" + filepath.Base(spool.Name())
		if err := s.d.Move(ctx, src, dst); err != nil {
			return fmt.Errorf("commit blob %s: %w", dgst, err)
		}
		return nil
	}
	defer s.DiscardSpool(spool)
	fi, err := spool.Stat()
	if err != nil {
		return fmt.Errorf("commit blob %s: stat spool: %w", dgst, err)
	}
	if err := s.upload(ctx, io.NewSectionReader(spool, 0, fi.Size()), fi.Size(), dst); err != nil {
		return fmt.Errorf("commit blob %s: %w", dgst, err)
	}
	return nil
}

// upload writes the size bytes of r to a temporary path on the driver, checks
// that the driver holds exactly size bytes there, and moves it to dst. On an
// object store the move is a server-side copy that appears whole or not at
// all, so dst is never a partial object; on any failure the temporary path is
// removed.
func (s *Store) upload(ctx context.Context, r io.Reader, size int64, dst string) (err error) {
	tmp, err := s.tempPath()
	if err != nil {
		return err
	}
	w, err := s.d.Writer(ctx, tmp, false)
	if err != nil {
		return fmt.Errorf("upload: open %s: %w", tmp, err)
	}
	defer func() {
		if err != nil {
			_ = s.d.Delete(context.WithoutCancel(ctx), tmp)
		}
	}()
	if _, err := io.Copy(w, r); err != nil {
		_ = w.Cancel(ctx)
		return fmt.Errorf("upload: write: %w", err)
	}
	if err := w.Commit(ctx); err != nil {
		_ = w.Cancel(ctx)
		return fmt.Errorf("upload: commit: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("upload: close: %w", err)
	}
	fi, err := s.d.Stat(ctx, tmp)
	if err != nil {
		return fmt.Errorf("upload: stat %s: %w", tmp, err)
	}
	if fi.Size() != size {
		return fmt.Errorf("upload: the backend holds %d bytes of %d", fi.Size(), size)
	}
	if err := s.d.Move(ctx, tmp, dst); err != nil {
		return fmt.Errorf("upload: move into place: %w", err)
	}
	return nil
}

func (s *Store) tempPath() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return spoolRoot + "/tmp-" + hex.EncodeToString(b[:]), nil
}

// putAtomic writes small content to a temporary path and moves it into place, so a
// reader never sees a half-written link or manifest.
func (s *Store) putAtomic(ctx context.Context, dst string, content []byte) error {
	tmp, err := s.tempPath()
	if err != nil {
		return err
	}
	if err := s.d.PutContent(ctx, tmp, content); err != nil {
		return err
	}
	if err := s.d.Move(ctx, tmp, dst); err != nil {
		_ = s.d.Delete(ctx, tmp)
		return err
	}
	return nil
}

// BlobInfo describes a stored blob.
type BlobInfo struct {
	Size    int64
	ModTime time.Time
}

// StatBlob reports whether the blob dgst is stored, and its size.
func (s *Store) StatBlob(ctx context.Context, dgst digest.Digest) (BlobInfo, error) {
	fi, err := s.d.Stat(ctx, blobDataPath(dgst))
	if err != nil {
		return BlobInfo{}, mapErr(err)
	}
	if fi.IsDir() {
		return BlobInfo{}, ErrNotFound
	}
	return BlobInfo{Size: fi.Size(), ModTime: fi.ModTime()}, checkEmpty(dgst, fi.Size())
}

// checkEmpty refuses an empty object stored for a digest of non-empty
// content: no commit writes one, so it is damage (a failed write outside this
// store, a filesystem that lost data), and serving it would answer a complete,
// wrong 200. The caller sees the blob as absent, and a fill replaces it.
func checkEmpty(dgst digest.Digest, size int64) error {
	if size == 0 && dgst != dgst.Algorithm().FromBytes(nil) {
		return fmt.Errorf("blob %s: stored object is empty: %w", dgst, ErrNotFound)
	}
	return nil
}

// OpenBlob opens the blob dgst for reading. On the filesystem driver the reader is
// an *os.File, so serving it uses sendfile. On other drivers (object stores) the
// reader is opened at the first Read, at the offset a Seek chose, so a Range
// request costs one ranged GET.
func (s *Store) OpenBlob(ctx context.Context, dgst digest.Digest) (io.ReadSeekCloser, BlobInfo, error) {
	if !s.spoolInRoot {
		info, err := s.StatBlob(ctx, dgst)
		if err != nil {
			return nil, BlobInfo{}, err
		}
		return &driverSeeker{ctx: ctx, d: s.d, path: blobDataPath(dgst), size: info.Size, reopen: true}, info, nil
	}
	rc, err := s.d.Reader(ctx, blobDataPath(dgst), 0)
	if err != nil {
		return nil, BlobInfo{}, mapErr(err)
	}
	f, ok := rc.(*os.File)
	if !ok {
		rc.Close()
		return nil, BlobInfo{}, fmt.Errorf("blob %s: the filesystem driver returned a %T", dgst, rc)
	}
	fi, err := f.Stat() // the hit path: fstat the open file, no second lookup
	if err != nil {
		f.Close()
		return nil, BlobInfo{}, err
	}
	if err := checkEmpty(dgst, fi.Size()); err != nil {
		f.Close()
		return nil, BlobInfo{}, err
	}
	return f, BlobInfo{Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// BlobURL returns a URL from which a client may fetch the blob dgst from the
// backend itself with method (GET or HEAD): a presigned URL on s3, a signed
// URL on gcs, a SAS URL on azure, "" when the driver cannot redirect (the
// filesystem). The caller checks that the blob is
// stored first.
func (s *Store) BlobURL(ctx context.Context, method string, dgst digest.Digest) (string, error) {
	r, err := http.NewRequestWithContext(ctx, method, "/", nil)
	if err != nil {
		return "", err
	}
	u, err := s.d.RedirectURL(r, blobDataPath(dgst))
	if err != nil {
		return "", fmt.Errorf("blob %s: redirect URL: %w", dgst, err)
	}
	return u, nil
}

// HasLayer reports whether repo links the blob dgst (it was pulled through repo).
func (s *Store) HasLayer(ctx context.Context, repo string, dgst digest.Digest) bool {
	_, err := s.d.Stat(ctx, layerLinkPath(repo, dgst))
	return err == nil
}

// LinkLayer records that repo holds the blob dgst.
func (s *Store) LinkLayer(ctx context.Context, repo string, dgst digest.Digest) error {
	if err := s.d.PutContent(ctx, layerLinkPath(repo, dgst), []byte(dgst.String())); err != nil {
		return fmt.Errorf("link %s in %s: %w", dgst, repo, err)
	}
	return nil
}

// mapErr maps a driver's error: a missing path is ErrNotFound, a cancelled
// request stays as it is, anything else wraps ErrUnavailable.
func mapErr(err error) error {
	var nf driver.PathNotFoundError
	switch {
	case err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.As(err, &nf):
		return ErrNotFound
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
