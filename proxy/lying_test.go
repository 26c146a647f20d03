package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/storage"
	"github.com/ocimirror/proxy/upstream"
)

// liar is an upstream that answers /v2/ and hands every other request to serve:
// it does what a real registry never does.
func liar(t *testing.T, serve http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		serve(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// assertNothingStored checks that neither the blob nor a spool file was left.
func assertNothingStored(t *testing.T, m *mirror, d digest.Digest) {
	t.Helper()
	if _, err := m.Store.StatBlob(context.Background(), d); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("blob %s was stored (err %v)", d, err)
	}
	spool, _ := os.ReadDir(filepath.Join(m.Root, "_proxy", "spool"))
	if len(spool) != 0 {
		t.Fatalf("spool files left behind: %d", len(spool))
	}
}

// readAll GETs url and returns what arrived and whether the transfer failed.
func readAll(t *testing.T, url string) (status int, body []byte, declared int64, failed bool) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil { // the connection was cut before a status line
		return 0, nil, -1, true
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	return resp.StatusCode, body, resp.ContentLength, err != nil
}

func TestLyingBlob(t *testing.T) {
	good := bytes.Repeat([]byte("layer-bytes "), 50_000)
	d := digest.FromBytes(good)
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 1 // one byte off, in the last byte
	cases := []struct {
		name  string
		serve http.HandlerFunc
	}{
		{"last byte off", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(bad)))
			_, _ = w.Write(bad)
		}},
		{"first byte off, chunked", func(w http.ResponseWriter, r *http.Request) {
			b := bytes.Clone(good)
			b[0] ^= 1
			_, _ = w.Write(b[:1000])
			w.(http.Flusher).Flush()
			_, _ = w.Write(b[1000:])
		}},
		{"cut short", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(good)))
			_, _ = w.Write(good[:len(good)/2])
			w.(http.Flusher).Flush()
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
		}},
		{"extra bytes, chunked", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write(append(bytes.Clone(good), 'x'))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := liar(t, tc.serve)
			m := startMirror(t, up.URL)
			status, body, declared, failed := readAll(t, m.URL+"/v2/lie/blobs/"+d.String())
			complete := status == 200 && !failed && (declared < 0 || int64(len(body)) == declared)
			if complete {
				t.Fatalf("client got a clean complete response (%d bytes) of unverified content", len(body))
			}
			if status == 200 && bytes.Equal(body, bad) {
				t.Fatal("client received every byte of the bad blob")
			}
			waitFillsDone(t, m, d)
			assertNothingStored(t, m, d)
		})
	}
}

// waitFillsDone waits (bounded) until no fill of d is in progress.
func waitFillsDone(t *testing.T, m *mirror, d digest.Digest) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if !m.Cache.Filling(d) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("fill still running after 5s")
}

func TestLyingManifest(t *testing.T) {
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}`)
	asked := digest.FromString("something else")
	huge := 64 << 20
	cases := []struct {
		name, ref string
		serve     http.HandlerFunc
		status    int
		code      string
		stored    digest.Digest
	}{
		{"body is not the digest asked", asked.String(), func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			_, _ = w.Write(manifest)
		}, 502, "DIGEST_INVALID", digest.FromBytes(manifest)},
		{"tag with a lying digest header", "v1", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Header().Set("Docker-Content-Digest", asked.String())
			_, _ = w.Write(manifest)
		}, 502, "DIGEST_INVALID", digest.FromBytes(manifest)},
		{"64 MiB manifest", "v1", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Header().Set("Content-Length", strconv.Itoa(huge))
			chunk := bytes.Repeat([]byte(" "), 1<<20)
			for range huge >> 20 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}, 502, "MANIFEST_INVALID", ""},
		{"64 MiB manifest, chunked", "v1", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			chunk := bytes.Repeat([]byte(" "), 1<<20)
			for range huge >> 20 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}, 502, "MANIFEST_INVALID", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := startMirror(t, liar(t, tc.serve).URL)
			code, _, body := get(t, "GET", m.URL+"/v2/lie/manifests/"+tc.ref, nil)
			if code != tc.status || errCode(t, body) != tc.code {
				t.Fatalf("got %d %s, want %d %s", code, body, tc.status, tc.code)
			}
			if tc.stored != "" {
				assertNothingStored(t, m, tc.stored)
			}
			if tags, err := m.Store.Tags(context.Background(), "lie"); err == nil && len(tags) > 0 {
				t.Fatalf("tags stored: %v", tags)
			}
		})
	}
}

// TestUpstreamNeverAnswers: an upstream that accepts and never answers gives the
// client a 504 in bounded time.
func TestUpstreamNeverAnswers(t *testing.T) {
	release := make(chan struct{})
	up := liar(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	m := startMirror(t, up.URL, upstream.WithTimeouts(time.Second, 300*time.Millisecond, 300*time.Millisecond),
		upstream.WithRetries(0, 0))
	for _, path := range []string{"/v2/slow/manifests/v1", "/v2/slow/blobs/" + digest.FromString("x").String()} {
		start := time.Now()
		code, _, body := get(t, "GET", m.URL+path, nil)
		if code != http.StatusGatewayTimeout || errCode(t, body) != "UNAVAILABLE" {
			t.Fatalf("%s: %d %s, want 504 UNAVAILABLE", path, code, body)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("%s: answered after %v", path, took)
		}
	}
}

// TestClientLeavesFillGoesOn: a client that disconnects mid-transfer does not
// cancel the fill; the blob is committed for the next client.
func TestClientLeavesFillGoesOn(t *testing.T) {
	content := bytes.Repeat([]byte("slow"), 256<<10) // 1 MiB
	d := digest.FromBytes(content)
	up := liar(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(content)))
		for i := 0; i < len(content); i += 64 << 10 {
			if _, err := w.Write(content[i : i+64<<10]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(10 * time.Millisecond)
		}
	})
	m := startMirror(t, up.URL)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", m.URL+"/v2/leave/blobs/"+d.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	waitFillsDone(t, m, d)
	if _, err := m.Store.StatBlob(context.Background(), d); err != nil {
		t.Fatalf("blob not committed after the client left: %v", err)
	}
	code, _, body := get(t, "GET", m.URL+"/v2/leave/blobs/"+d.String(), nil)
	if code != 200 || !bytes.Equal(body, content) {
		t.Fatalf("second client: %d, %d bytes", code, len(body))
	}
}

func TestHeldBackLastByte(t *testing.T) {
	content := []byte(strings.Repeat("held back ", 1000))
	d := digest.FromBytes(content)
	release := make(chan struct{})
	up := liar(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(content)))
		_, _ = w.Write(content[:len(content)-1])
		w.(http.Flusher).Flush()
		<-release
		_, _ = w.Write(content[len(content)-1:])
	})
	m := startMirror(t, up.URL)
	resp, err := http.Get(m.URL + "/v2/held/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadFull(resp.Body, make([]byte, len(content)-1))
	if err != nil {
		t.Fatalf("read the first %d bytes: %v", got, err)
	}
	// The last byte must not arrive before the upstream sent it and it verified.
	one := make(chan error, 1)
	go func() { _, err := io.ReadFull(resp.Body, make([]byte, 1)); one <- err }()
	select {
	case err := <-one:
		t.Fatalf("last byte arrived before verification (err %v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-one:
		if err != nil {
			t.Fatalf("last byte: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("last byte never arrived")
	}
}
