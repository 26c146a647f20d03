// Package testproc runs server programs for tests (emulators, redis-server)
// on 127.0.0.1: found on PATH or the test skipped, started on a free port,
// waited for until they accept connections, and killed.
package testproc

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// listenTimeout bounds the wait for a program to accept connections (Azurite,
// a node program, can take several seconds on a busy machine).
const listenTimeout = 30 * time.Second

// Find returns the path of the program name. When it is not on PATH the test
// is skipped, saying how to install it (install), or fails when the
// environment variable require is "1", so that CI cannot pass by skipping.
func Find(t testing.TB, name, install, require string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err == nil {
		return bin
	}
	msg := name + " is not on PATH (install it: " + install + ")"
	if os.Getenv(require) == "1" {
		t.Fatal(msg + "; " + require + "=1 makes this test mandatory")
	}
	t.Skip(msg + "; skipping (" + require + "=1 makes this a failure)")
	return ""
}

// Start runs bin with args(port) on a free loopback port, retrying on
// another port if it does not come up (the port may be taken between probing
// and the program's bind), and kills it when the test ends. It returns the
// port.
func Start(t testing.TB, bin string, args func(port int) []string) int {
	t.Helper()
	var last error
	for range 3 {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		stop, err := Run(t, bin, args(port), fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			t.Cleanup(stop)
			return port
		}
		last = err
	}
	t.Fatalf("%s did not start: %v", bin, last)
	return 0
}

// Run starts bin with args and waits until addr accepts a connection. It
// returns a func that kills the program (SIGKILL, as a crash) and waits for
// it; on an error the program is already stopped.
func Run(t testing.TB, bin string, args []string, addr string) (stop func(), err error) {
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("%s (pid %d) did not exit 10s after SIGKILL", bin, cmd.Process.Pid)
		}
	}
	if err := waitListening(addr, exited); err != nil {
		stop()
		return nil, fmt.Errorf("%s: %w: %s", bin, err, out.String())
	}
	return stop, nil
}

// waitListening waits for addr to accept a connection, or for the program to
// exit (then it puts the exit back in exited for the stopper).
func waitListening(addr string, exited chan error) error {
	deadline := time.Now().Add(listenTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("exited (%v)", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s after %v", addr, listenTimeout)
		}
	}
}

// FreePort returns a port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
