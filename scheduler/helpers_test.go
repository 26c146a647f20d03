package scheduler

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
)

// clock is a fake clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

func quietLogger() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// openTest opens an index in a temporary directory that is closed at the end of
// the test. Flushes happen only when the test asks, unless opts say otherwise.
func openTest(t testing.TB, opts ...Option) (*Index, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "scheduler.db")
	return openAt(t, path, opts...), path
}

func openAt(t testing.TB, path string, opts ...Option) *Index {
	t.Helper()
	base := []Option{WithFlushInterval(time.Hour), WithLogger(quietLogger())}
	ix, err := Open(path, append(base, opts...)...)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { _ = ix.Close() })
	return ix
}

func dgst(s string) digest.Digest { return digest.FromString(s) }

func blobKey(repo, content string) Key {
	return Key{Kind: KindBlob, Repo: repo, Digest: dgst(content)}
}

func manifestKey(repo, content string) Key {
	return Key{Kind: KindManifest, Repo: repo, Digest: dgst(content)}
}

func tagKey(repo, tag, content string) Key {
	return Key{Kind: KindTag, Repo: repo, Tag: tag, Digest: dgst(content)}
}

// fakeDeleter records the deletions asked of it.
type fakeDeleter struct {
	mu      sync.Mutex
	calls   []string
	inUse   map[digest.Digest]bool
	fail    map[string]error // by call
	deleted chan string      // if set, gets every call
	hook    func(call string)
	asked   map[digest.Digest]int // InUse calls
}

func newFakeDeleter() *fakeDeleter {
	return &fakeDeleter{inUse: map[digest.Digest]bool{}, fail: map[string]error{}, asked: map[digest.Digest]int{}}
}

func (f *fakeDeleter) call(c string) error {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	err := f.fail[c]
	ch, hook := f.deleted, f.hook
	f.mu.Unlock()
	if hook != nil {
		hook(c)
	}
	if ch != nil {
		select {
		case ch <- c:
		default:
		}
	}
	return err
}

func (f *fakeDeleter) DeleteTag(_ context.Context, repo, tag string) error {
	return f.call(fmt.Sprintf("tag %s:%s", repo, tag))
}

func (f *fakeDeleter) DeleteManifest(_ context.Context, repo string, d digest.Digest) error {
	return f.call(fmt.Sprintf("manifest %s@%s", repo, d))
}

func (f *fakeDeleter) UnlinkBlob(_ context.Context, repo string, d digest.Digest) error {
	return f.call(fmt.Sprintf("unlink %s@%s", repo, d))
}

func (f *fakeDeleter) DeleteBlob(_ context.Context, d digest.Digest) error {
	return f.call(fmt.Sprintf("blob %s", d))
}

func (f *fakeDeleter) InUse(d digest.Digest) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked[d]++
	return f.inUse[d]
}

func (f *fakeDeleter) set(inUse digest.Digest, used bool, call string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if inUse != "" {
		f.inUse[inUse] = used
	}
	if call != "" {
		f.fail[call] = err
	}
}

// take returns the calls so far and forgets them.
func (f *fakeDeleter) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

// The call strings the fake records, for expectations.
func callTag(repo, tag string) string { return fmt.Sprintf("tag %s:%s", repo, tag) }
func callManifest(repo, content string) string {
	return fmt.Sprintf("manifest %s@%s", repo, dgst(content))
}
func callUnlink(repo, content string) string { return fmt.Sprintf("unlink %s@%s", repo, dgst(content)) }
func callBlob(content string) string         { return fmt.Sprintf("blob %s", dgst(content)) }
