package cache

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"

	"github.com/opencontainers/go-digest"
)

// fill is the one upstream fetch of a blob into a spool file, shared by every client
// that asks for the blob while it runs. Clients read the spool as it grows, but the
// last byte is held back until the whole blob hashed to its digest: a client never
// receives a complete response of unverified bytes.
type fill struct {
	dgst  digest.Digest
	repo  repository // the repository the upstream fetch is made in
	file  *os.File   // the spool; read with ReadAt, valid after commit renames it
	ready chan struct{}
	hash  hash.Hash // of the spool's bytes so far; only the runner uses it

	stored   chan struct{} // closed when the runner is done: committed and linked, or failed
	storeErr error         // why nothing was stored; written before stored is closed

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change below
	size    int64         // declared by the upstream; -1 while unknown
	written int64
	done    bool  // every byte arrived and the digest matched
	err     error // the fill failed; no further bytes
	refs    int   // the runner and every open Blob; the file closes at zero
}

func newFill(dgst digest.Digest, repo repository, file *os.File) *fill {
	return &fill{
		dgst: dgst, repo: repo, file: file,
		ready:   make(chan struct{}),
		hash:    dgst.Algorithm().Hash(),
		stored:  make(chan struct{}),
		changed: make(chan struct{}),
		size:    -1,
		refs:    2, // the runner and the client that started it
	}
}

// notify wakes every waiting reader; f.mu must be held.
func (f *fill) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// start records the size the upstream declared and lets clients begin.
func (f *fill) start(size int64) {
	f.mu.Lock()
	f.size = size
	f.mu.Unlock()
	close(f.ready)
}

func (f *fill) advance(n int) {
	f.mu.Lock()
	f.written += int64(n)
	f.notify()
	f.mu.Unlock()
}

// finish ends the transfer: err nil means every byte arrived and verified, and
// clients may have the last byte. Committing to storage happens after.
func (f *fill) finish(err error) {
	f.mu.Lock()
	if err != nil {
		f.err = err
	} else {
		f.done = true
		f.size = f.written
	}
	f.notify()
	f.mu.Unlock()
	select { // only the runner calls start and finish, so this cannot race
	case <-f.ready:
	default:
		close(f.ready)
	}
}

func (f *fill) acquire() {
	f.mu.Lock()
	f.refs++
	f.mu.Unlock()
}

func (f *fill) release() {
	f.mu.Lock()
	f.refs--
	last := f.refs == 0
	f.mu.Unlock()
	if last {
		_ = f.file.Close()
	}
}

// readable is how many bytes clients may have now; f.mu must be held.
func (f *fill) readable() int64 {
	if f.done {
		return f.written
	}
	n := f.written - 1
	if f.size >= 0 {
		n = min(f.written, f.size-1)
	}
	return max(n, 0)
}

// ReadAt reads from the spool at off, waiting for the bytes to arrive. It returns
// io.EOF at the end of a verified blob and the fill's error if it failed.
func (f *fill) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	avail, err := f.wait(ctx, off)
	if err != nil {
		return 0, err
	}
	n, err := f.file.ReadAt(p[:min(int64(len(p)), avail-off)], off)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// wait blocks until clients may read past off, and returns how far they may.
// It returns io.EOF when a verified blob ends at off, and the fill's error if
// it failed.
func (f *fill) wait(ctx context.Context, off int64) (int64, error) {
	for {
		f.mu.Lock()
		avail, done, err, changed := f.readable(), f.done, f.err, f.changed
		f.mu.Unlock()
		switch {
		case err != nil:
			return 0, err
		case off < avail:
			return avail, nil
		case done:
			return 0, io.EOF
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// reopen returns a private handle on the spool, with its own file offset, so a
// reader can hand the file to sendfile. It works while the fill holds the file
// open, also after the commit renamed it.
func (f *fill) reopen() (*os.File, error) {
	return os.Open(fmt.Sprintf("/proc/self/fd/%d", f.file.Fd()))
}

// errCut marks a source body that ended early or broke: the bytes spooled so
// far are good as far as anyone can tell, and another source may continue.
var errCut = errors.New("body cut short")

// begin lets clients in at the first source's answer. A later source (after
// the first one broke) must declare the same size, if both declare one.
func (f *fill) begin(size int64) error {
	select {
	case <-f.ready:
		if size >= 0 && f.size >= 0 && size != f.size { // only the runner writes f.size
			return fmt.Errorf("blob %s: this source declares %d bytes, an earlier one %d: %w", f.dgst, size, f.size, ErrSizeMismatch)
		}
		return nil
	default:
		f.start(size)
		return nil
	}
}

// copyFrom copies body, a whole blob from its first byte, into the spool,
// hashing as it goes, and checks length and digest at the end. When an
// earlier source broke off, the bytes it spooled are skipped in body, so a
// fill can go on from another source (a peer, the store, the upstream).
func (f *fill) copyFrom(body io.Reader, size int64) error {
	written := f.written // only the runner writes it
	if written > 0 {
		if n, err := io.CopyN(io.Discard, body, written); err != nil {
			if err == io.EOF {
				return fmt.Errorf("blob %s: body of %d bytes, %d spooled already: %w", f.dgst, n, written, ErrSizeMismatch)
			}
			return fmt.Errorf("blob %s: skip the %d bytes spooled already: %w: %w", f.dgst, written, errCut, err)
		}
	}
	buf := make([]byte, 256<<10)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if size >= 0 && written+int64(n) > size {
				return fmt.Errorf("blob %s: more than the %d bytes declared: %w", f.dgst, size, ErrSizeMismatch)
			}
			if _, err := f.file.Write(buf[:n]); err != nil {
				return fmt.Errorf("blob %s: write spool: %w", f.dgst, err)
			}
			f.hash.Write(buf[:n])
			written += int64(n)
			f.advance(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("blob %s: read body after %d bytes: %w: %w", f.dgst, written, errCut, rerr)
		}
	}
	if size >= 0 && written != size {
		return fmt.Errorf("blob %s: %d of %d bytes: %w: %w", f.dgst, written, size, ErrSizeMismatch, errCut)
	}
	if got := digest.NewDigest(f.dgst.Algorithm(), f.hash); got != f.dgst {
		return fmt.Errorf("blob %s: body hashes to %s: %w", f.dgst, got, ErrDigestMismatch)
	}
	return nil
}
