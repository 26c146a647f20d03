// Package redistest runs a real redis-server for tests, on a free 127.0.0.1
// port, with persistence off (unless AppendOnly), killed when the test ends.
//
// Start skips the test (saying how to install redis-server) when the binary is
// missing, unless REDIS_REQUIRE=1: then a missing server fails the test, so CI
// cannot pass by skipping.
package redistest

import (
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ocimirror/proxy/internal/testproc"
)

// Server is a running redis-server.
type Server struct {
	// Addr is its host:port on 127.0.0.1.
	Addr string

	t    testing.TB
	bin  string
	dir  string
	aof  bool
	mu   sync.Mutex
	stop func()
}

// Option configures a server.
type Option func(*Server)

// AppendOnly turns Redis's append-only file on, synced at every write: data
// then survives Stop (a SIGKILL) and Restart, as a production Redis holding
// state should be configured.
func AppendOnly() Option { return func(s *Server) { s.aof = true } }

// Start runs redis-server on a free loopback port and stops it when the test
// ends. It skips the test when redis-server is not installed, unless
// REDIS_REQUIRE=1.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{t: t, bin: testproc.Find(t, "redis-server", "apt-get install redis-server", "REDIS_REQUIRE"), dir: t.TempDir()}
	for _, o := range opts {
		o(s)
	}
	var last error
	for range 3 { // the free port may be taken between probing and redis's bind
		port, err := testproc.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if last = s.run(); last == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("redis-server did not start: %v", last)
	return nil
}

// run starts the server on s.Addr and waits until it accepts connections.
func (s *Server) run() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	aof := []string{"--appendonly", "no"}
	if s.aof {
		aof = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	stop, err := testproc.Run(s.t, s.bin, append([]string{"--port", port, "--bind", "127.0.0.1", "--save", "",
		"--dir", s.dir, "--protected-mode", "yes"}, aof...), s.Addr)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.stop = stop
	s.mu.Unlock()
	return nil
}

// Stop kills the server (SIGKILL, as a crash); Restart brings it back on the
// same address, with no data unless it runs with AppendOnly.
func (s *Server) Stop() {
	s.mu.Lock()
	stop := s.stop
	s.stop = nil
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Restart starts the server again on the same address after Stop.
func (s *Server) Restart() {
	s.t.Helper()
	var err error
	for range 20 { // the port may linger briefly after the kill
		if err = s.run(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("redis-server did not restart on %s: %v", s.Addr, err)
}
