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
	"os"
	"path/filepath"
	"time"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/opencontainers/go-digest"
)

// ErrNotFound reports content the store does not hold.
var ErrNotFound = errors.New("not found in local storage")

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
// directory spoolDir and uploaded on commit.
func New(d driver.StorageDriver, spoolDir string) (*Store, error) {
	s := &Store{d: d, spoolDir: spoolDir}
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
	if err := s.upload(ctx, io.NewSectionReader(spool, 0, 1<<62), dst); err != nil {
		return fmt.Errorf("commit blob %s: %w", dgst, err)
	}
	return nil
}

// upload writes r to a temporary path on the driver and moves it to dst.
func (s *Store) upload(ctx context.Context, r io.Reader, dst string) error {
	tmp, err := s.tempPath()
	if err != nil {
		return err
	}
	w, err := s.d.Writer(ctx, tmp, false)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		_ = w.Cancel(ctx)
		return err
	}
	if err := w.Commit(ctx); err != nil {
		_ = w.Cancel(ctx)
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return s.d.Move(ctx, tmp, dst)
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
	return BlobInfo{Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// OpenBlob opens the blob dgst for reading. On the filesystem driver the reader is
// an *os.File, so serving it uses sendfile.
func (s *Store) OpenBlob(ctx context.Context, dgst digest.Digest) (io.ReadSeekCloser, BlobInfo, error) {
	rc, err := s.d.Reader(ctx, blobDataPath(dgst), 0)
	if err != nil {
		return nil, BlobInfo{}, mapErr(err)
	}
	if f, ok := rc.(*os.File); ok { // the hit path: fstat the open file, no second lookup
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, BlobInfo{}, err
		}
		return f, BlobInfo{Size: fi.Size(), ModTime: fi.ModTime()}, nil
	}
	info, err := s.StatBlob(ctx, dgst)
	if err != nil {
		rc.Close()
		return nil, BlobInfo{}, err
	}
	if rs, ok := rc.(io.ReadSeekCloser); ok {
		return rs, info, nil
	}
	return &driverSeeker{ctx: ctx, d: s.d, path: blobDataPath(dgst), rc: rc, size: info.Size}, info, nil
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

func mapErr(err error) error {
	var nf driver.PathNotFoundError
	if errors.As(err, &nf) {
		return ErrNotFound
	}
	return err
}
