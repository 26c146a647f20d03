//go:build linux

package proxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/internal/testregistry"
)

// TestHitCorked: a hit goes out with TCP_CORK set on the client's socket
// (full segments, as nginx's tcp_nopush) and the cork is off again once the
// body is sent, so its last bytes leave at once and the connection serves the
// next request.
func TestHitCorked(t *testing.T) {
	m := startMirror(t, testregistry.Start(t).URL)
	data := bytes.Repeat([]byte("corked layer "), 24<<20/13) // far more than the sockets hold (about 10 MiB here)
	layer := store(t, m, "team/app", data)
	url := "/v2/team/app/blobs/" + layer.String()
	var mu sync.Mutex
	var conns []*net.TCPConn
	srv := httptest.NewUnstartedServer(New(m.Cache))
	srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		mu.Lock()
		conns = append(conns, c.(*net.TCPConn))
		mu.Unlock()
		return ConnContext(ctx, c)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	cork := func() int {
		mu.Lock()
		defer mu.Unlock()
		if len(conns) != 1 {
			t.Fatalf("%d connections, want 1 (keep-alive)", len(conns))
		}
		return sockopt(t, conns[0], syscall.TCP_CORK)
	}
	for i := range 2 {
		resp, err := srv.Client().Get(srv.URL + url)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(resp.Body, make([]byte, 4096)); err != nil {
			t.Fatal(err)
		}
		if c := cork(); c == 0 {
			t.Errorf("GET %d: TCP_CORK is off while the hit is sent", i)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || len(body)+4096 != len(data) {
			t.Fatalf("GET %d: %d bytes, %v", i, len(body)+4096, err)
		}
		if c := cork(); c != 0 {
			t.Errorf("GET %d: TCP_CORK is still on after the body", i)
		}
	}
}

// store puts data in m's store as a layer of repo, as a fill would have.
func store(t *testing.T, m *mirror, repo string, data []byte) digest.Digest {
	t.Helper()
	ctx := context.Background()
	spool, err := m.Store.NewSpool()
	if err != nil {
		t.Fatal(err)
	}
	dgst := digest.FromBytes(data)
	if _, err := spool.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := m.Store.CommitBlob(ctx, spool, dgst); err != nil {
		t.Fatal(err)
	}
	m.Store.DiscardSpool(spool) // a no-op once moved into place
	_ = spool.Close()
	if err := m.Store.LinkLayer(ctx, repo, dgst); err != nil {
		t.Fatal(err)
	}
	return dgst
}

func sockopt(t *testing.T, tc *net.TCPConn, opt int) int {
	t.Helper()
	rc, err := tc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	if err := rc.Control(func(fd uintptr) { v, serr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, opt) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return v
}
