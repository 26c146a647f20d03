package upstream

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

const hugeManifest = 64 << 20

// hugeServer serves a 64 MiB "manifest" 32 KiB at a time, with or without a
// Content-Length, and reports how many bytes it managed to write.
func hugeServer(t *testing.T, withLength bool) (*httptest.Server, <-chan int64) {
	t.Helper()
	written := make(chan int64, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var total int64
		defer func() { written <- total }()
		w.Header().Set("Content-Type", mtOCIManifest)
		if withLength {
			w.Header().Set("Content-Length", strconv.Itoa(hugeManifest))
		}
		chunk := bytes.Repeat([]byte{' '}, 32<<10)
		for total < hugeManifest { // bounded by the size
			n, err := w.Write(chunk)
			total += int64(n)
			if err != nil {
				return
			}
			if f, ok := w.(http.Flusher); ok && total == int64(len(chunk)) {
				f.Flush() // headers out: chunked when there is no length
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv, written
}

func TestManifestTooLarge(t *testing.T) {
	for _, withLength := range []bool{true, false} {
		t.Run("content-length "+strconv.FormatBool(withLength), func(t *testing.T) {
			srv, written := hugeServer(t, withLength)
			c := newTestClient(t, srv.URL)
			start := time.Now()
			body, _, err := c.GetManifest(testContext(t), "team/app", "huge", nil)
			if !errors.Is(err, ErrManifestTooLarge) || body != nil {
				t.Fatalf("err = %v (body %d bytes), want ErrManifestTooLarge", err, len(body))
			}
			if IsUnavailable(err) {
				t.Errorf("IsUnavailable(%v) = true", err)
			}
			select {
			case n := <-written:
				if n >= hugeManifest/2 {
					t.Errorf("server wrote %d bytes: the client read the body through", n)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("server still writing 10s after the client gave up")
			}
			if elapsed := time.Since(start); elapsed > 10*time.Second {
				t.Errorf("took %v", elapsed)
			}
		})
	}
}

// TestManifestTooLargeByContentLength: a too large Content-Length is refused
// before reading, so a body that then stalls does not matter.
func TestManifestTooLargeByContentLength(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(hugeManifest))
		_, _ = w.Write([]byte("{"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv.URL, WithTimeouts(time.Second, time.Second, 5*time.Second))
	start := time.Now()
	_, _, err := c.GetManifest(testContext(t), "team/app", "huge", nil)
	if !errors.Is(err, ErrManifestTooLarge) {
		t.Fatalf("err = %v, want ErrManifestTooLarge", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("took %v: the body was read instead of judging Content-Length", elapsed)
	}
}

func TestMaxManifestSizeBoundary(t *testing.T) {
	const limit = 100
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Path[len("/v2/team/app/manifests/size"):])
		w.Header().Set("Content-Type", mtOCIManifest)
		_, _ = w.Write(bytes.Repeat([]byte{'x'}, n))
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv.URL, WithMaxManifestSize(limit))
	for _, tt := range []struct {
		size    int
		wantErr bool
	}{{limit - 1, false}, {limit, false}, {limit + 1, true}} {
		body, d, err := c.GetManifest(testContext(t), "team/app", "size"+strconv.Itoa(tt.size), nil)
		if errors.Is(err, ErrManifestTooLarge) != tt.wantErr {
			t.Errorf("size %d: err = %v, want too large: %v", tt.size, err, tt.wantErr)
		}
		if !tt.wantErr && (len(body) != tt.size || d.Size != int64(tt.size)) {
			t.Errorf("size %d: got %d bytes, descriptor size %d", tt.size, len(body), d.Size)
		}
	}
}

// hangingServer accepts requests and never answers until the client leaves.
func hangingServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestResponseHeaderTimeout(t *testing.T) {
	srv, attempts := hangingServer(t)
	c := newTestClient(t, srv.URL, WithTimeouts(time.Second, 300*time.Millisecond, time.Second))
	ctx, cancel := testContextWithTimeout(t, 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.HeadManifest(ctx, "team/app", "v1", nil)
	elapsed := time.Since(start)
	if err == nil || !IsUnavailable(err) {
		t.Fatalf("err = %v, want an unavailable timeout", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the test deadline fired (%v), not the response-header timeout", err)
	}
	if elapsed < 250*time.Millisecond || elapsed > 2*time.Second || attempts.Load() != 1 {
		t.Errorf("failed after %v and %d attempts, want about 300ms and 1 (timeouts are not retried)", elapsed, attempts.Load())
	}
}

// stallingServer sends half of data, then nothing until the client leaves.
func stallingServer(t *testing.T, data []byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		_, _ = w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestBodyStall(t *testing.T) {
	data := bytes.Repeat([]byte("layer"), 1000)
	srv := stallingServer(t, data)
	c := newTestClient(t, srv.URL, WithTimeouts(time.Second, time.Second, 300*time.Millisecond))
	body, size, err := c.GetBlob(testContext(t), "team/app", digest.FromBytes(data))
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	if size != int64(len(data)) {
		t.Errorf("size = %d, want %d", size, len(data))
	}
	start := time.Now()
	got, err := io.ReadAll(body)
	elapsed := time.Since(start)
	if !errors.Is(err, ErrStalled) || !IsUnavailable(err) {
		t.Fatalf("read err = %v, want ErrStalled", err)
	}
	if len(got) != len(data)/2 {
		t.Errorf("read %d bytes before the stall, want %d", len(got), len(data)/2)
	}
	if elapsed < 250*time.Millisecond || elapsed > 3*time.Second {
		t.Errorf("stall detected after %v, want about 300ms", elapsed)
	}
	if _, err := body.Read(make([]byte, 1)); !errors.Is(err, ErrStalled) {
		t.Errorf("read after a stall = %v, want ErrStalled again", err)
	}
}

func TestBodyHonoursContext(t *testing.T) {
	data := bytes.Repeat([]byte("layer"), 1000)
	srv := stallingServer(t, data)
	c := newTestClient(t, srv.URL, WithTimeouts(time.Second, time.Second, time.Minute))
	ctx, cancel := context.WithCancel(testContext(t))
	body, _, err := c.GetBlob(ctx, "team/app", digest.FromBytes(data))
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err = io.ReadAll(body)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrStalled) {
		t.Fatalf("read err = %v, want context.Canceled", err)
	}
	if IsUnavailable(err) {
		t.Errorf("a cancelled read counts as unavailable: %v", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("cancel took %v to end the read", elapsed)
	}
}

// TestSlowConsumerIsNoStall: the stall clock runs only inside Read.
func TestSlowConsumerIsNoStall(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 64<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(data)
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv.URL, WithTimeouts(time.Second, time.Second, 100*time.Millisecond))
	body, _, err := c.GetBlob(testContext(t), "team/app", digest.FromBytes(data))
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	buf := make([]byte, 16<<10)
	var total int
	for range 100 { // bounded: 4 reads expected
		n, err := body.Read(buf)
		total += n
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read after %d bytes: %v", total, err)
		}
		time.Sleep(250 * time.Millisecond) // longer than the stall timeout
	}
	if total != len(data) {
		t.Errorf("read %d bytes, want %d", total, len(data))
	}
}

func TestGzipBodyReturnedAsIs(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(bytes.Repeat([]byte("compressible "), 1000))
	_ = zw.Close()
	var acceptEncoding atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		acceptEncoding.Store(r.Header.Get("Accept-Encoding"))
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(gz.Bytes())
	}))
	t.Cleanup(srv.Close)
	for _, tt := range []struct {
		name string
		opts []Option
	}{
		{"tuned transport", nil},
		{"default transport", []Option{WithTransport(http.DefaultTransport)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, srv.URL, tt.opts...)
			body, size, err := c.GetBlob(testContext(t), "team/app", digest.FromBytes(gz.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			defer body.Close()
			got := readAll(t, body)
			if !bytes.Equal(got, gz.Bytes()) || size != int64(gz.Len()) {
				t.Errorf("got %d bytes (size %d), want the %d gzip bytes untouched", len(got), size, gz.Len())
			}
			if ae := acceptEncoding.Load(); ae != "identity" {
				t.Errorf("Accept-Encoding = %v, want identity", ae)
			}
		})
	}
}
