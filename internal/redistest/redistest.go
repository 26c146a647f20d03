// Package redistest runs a real redis-server for tests, on a free 127.0.0.1
// port, with persistence off (unless AppendOnly), killed when the test ends.
//
// Start skips the test (saying how to install redis-server) when the binary is
// missing, unless REDIS_REQUIRE=1: then a missing server fails the test, so CI
// cannot pass by skipping.
package redistest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
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
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redis-server is not on PATH (apt-get install redis-server)"
		if os.Getenv("REDIS_REQUIRE") == "1" {
			t.Fatal(msg + "; REDIS_REQUIRE=1 makes the Redis tests mandatory")
		}
		t.Skip(msg + "; skipping the Redis test (REDIS_REQUIRE=1 makes this a failure)")
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	for _, o := range opts {
		o(s)
	}
	var last error
	for range 3 { // the free port may be taken between probing and redis's bind
		port, err := freePort()
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
	var out bytes.Buffer
	aof := []string{"--appendonly", "no"}
	if s.aof {
		aof = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	cmd := exec.Command(s.bin, append([]string{"--port", port, "--bind", "127.0.0.1", "--save", "",
		"--dir", s.dir, "--protected-mode", "yes"}, aof...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			s.t.Errorf("redis-server (pid %d) did not exit 10s after SIGKILL", cmd.Process.Pid)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			s.mu.Lock()
			s.stop = stop
			s.mu.Unlock()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server exited (%v): %s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("redis-server not listening on %s after 10s: %s", s.Addr, out.String())
		}
	}
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

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
