//go:build e2e

package e2e

// Blobs for the cluster test: pseudo-random blobs of hundreds of MiB pushed
// to the upstream registry without holding them in memory, and clients that
// GET a blob from the replicas and hash what they receive.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/ocimirror/proxy/internal/slowread"
)

// blob is a pseudo-random blob in the upstream: the same seed gives the same
// bytes again.
type blob struct {
	Repo   string
	Digest string // sha256:...
	Size   int64
	seed   [32]byte
}

// open returns the blob's bytes.
func (b blob) open() io.Reader {
	return io.LimitReader(mrand.NewChaCha8(b.seed), b.Size)
}

// pushBlob pushes a new pseudo-random blob of size bytes to repo in the
// registry at base (a monolithic upload: POST, then PUT ?digest= with the
// body), reading its bytes twice (to hash, to send) instead of keeping them.
func pushBlob(t *testing.T, base, repo string, size int64) blob {
	t.Helper()
	b := blob{Repo: repo, Size: size}
	_, _ = rand.Read(b.seed[:])
	h := sha256.New()
	if _, err := io.Copy(h, b.open()); err != nil {
		t.Fatal(err)
	}
	b.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	if err := uploadBlob(base, b); err != nil {
		t.Fatalf("push %s (%d bytes): %v", b.Digest, size, err)
	}
	return b
}

// uploadBlob sends b's bytes to the registry at base.
func uploadBlob(base string, b blob) error {
	client := &http.Client{Timeout: 2 * time.Minute}
	resp, err := client.Post(base+"/v2/"+b.Repo+"/blobs/uploads/", "", nil)
	if err != nil {
		return fmt.Errorf("start upload: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("start upload: %s", resp.Status)
	}
	loc, err := resp.Location()
	if err != nil {
		return fmt.Errorf("start upload: %w", err)
	}
	q := loc.Query()
	q.Set("digest", b.Digest)
	loc.RawQuery = q.Encode()
	req, err := http.NewRequest(http.MethodPut, loc.String(), b.open())
	if err != nil {
		return err
	}
	req.ContentLength = b.Size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = client.Do(req)
	if err != nil {
		return fmt.Errorf("finish upload: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("finish upload: %s", resp.Status)
	}
	return nil
}

// pull is one client's GET of a blob from a replica.
type pull struct {
	client, replica int
	took            time.Duration
	err             error // a transport error, a status other than 200, a wrong length or digest
}

// getBlob GETs b from the proxy at base and checks the body's length and
// digest; it returns how long the whole transfer took.
func getBlob(ctx context.Context, base string, b blob) (time.Duration, error) {
	return getBlobPaced(ctx, base, b, 0)
}

// getBlobPaced is getBlob for a client that reads the body at most rate
// bytes per second (0: as fast as it comes): a slow client, whose transfer
// holds the replica's read of the blob open for as long.
func getBlobPaced(ctx context.Context, base string, b blob, rate int64) (time.Duration, error) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/"+b.Repo+"/blobs/"+url.PathEscape(b.Digest), nil)
	if err != nil {
		return 0, err
	}
	client := http.DefaultClient
	if rate > 0 {
		// A small receive window: the replica's response ends when the
		// client's read does, not when the kernel buffered the rest.
		client = slowread.Client()
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return 0, fmt.Errorf("GET %s: %s: %s", b.Digest, resp.Status, msg)
	}
	h := sha256.New()
	var body io.Reader = resp.Body
	if rate > 0 {
		body = &slowReader{r: resp.Body, rate: rate, start: time.Now()}
	}
	n, err := io.Copy(h, body)
	if err != nil {
		return 0, fmt.Errorf("GET %s: after %d bytes: %w", b.Digest, n, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); n != b.Size || got != b.Digest {
		return 0, fmt.Errorf("GET %s: %d bytes hashing to %s, want %d bytes", b.Digest, n, got, b.Size)
	}
	return time.Since(start), nil
}

// slowReader reads r at most rate bytes per second from start.
type slowReader struct {
	r     io.Reader
	rate  int64
	start time.Time
	n     int64
}

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(time.Until(paceDue(s.start, s.n, s.rate)))
	n, err := s.r.Read(p[:min(len(p), pacedChunk)])
	s.n += int64(n)
	return n, err
}

// pullAll starts clients GETs of b at once, client i on replica bases[i%len],
// and returns every result when all are done (each bounded by ctx).
func pullAll(ctx context.Context, bases []string, b blob, clients int) []pull {
	out := make([]pull, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := i % len(bases)
			took, err := getBlob(ctx, bases[r], b)
			out[i] = pull{client: i, replica: r, took: took, err: err}
		}()
	}
	wg.Wait()
	return out
}

// slowest returns the longest of the pulls' times.
func slowest(ps []pull) time.Duration {
	var m time.Duration
	for _, p := range ps {
		m = max(m, p.took)
	}
	return m
}

// slowestOn returns the longest of the pulls' times on each of n replicas.
func slowestOn(ps []pull, n int) []time.Duration {
	out := make([]time.Duration, n)
	for _, p := range ps {
		out[p.replica] = max(out[p.replica], p.took.Round(time.Millisecond))
	}
	return out
}

// keepPulling GETs b through base again and again, one pull every xEvery,
// until the returned stop is called (or ctx ends); stop returns how many
// pulls ran and their errors.
func keepPulling(ctx context.Context, base string, b blob) (stop func() (int, []error)) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var n int
	var errs []error
	go func() {
		defer close(done)
		for tick := time.NewTicker(xEvery); ; {
			if _, err := getBlob(ctx, base, b); err != nil && ctx.Err() == nil {
				errs = append(errs, err)
			}
			n++
			select {
			case <-ctx.Done():
				tick.Stop()
				return
			case <-tick.C:
			}
		}
	}()
	return func() (int, []error) { cancel(); <-done; return n, errs }
}
